# install_generated.cmake - run by `cmake --install` (install(SCRIPT) in
# cmake/install.cmake): the installed files that name other installed paths,
# generated from the install prefix in effect now (CMAKE_INSTALL_PREFIX, which
# `cmake --install --prefix` overrides), and the example configuration, which
# must not replace an administrator's file.  The DC_CFG_* and DC_SRC/DC_STAGE
# variables are set by install.cmake's install(CODE) just before.

# A directory as GNUInstallDirs would make it absolute for this prefix:
# absolute stays; sysconfdir under /usr or / is /etc, under /opt/X /etc/opt/X.
function(dc_full out dir kind)
  set(p "${CMAKE_INSTALL_PREFIX}")
  string(REGEX REPLACE "/+$" "" p "${p}")
  if(IS_ABSOLUTE "${dir}")
    set(full "${dir}")
  elseif(kind STREQUAL "SYSCONF" AND (p STREQUAL "" OR p STREQUAL "/usr"))
    set(full "/${dir}")
  elseif(kind STREQUAL "SYSCONF" AND p MATCHES "^/opt/")
    set(full "/${dir}${p}")
  else()
    set(full "${p}/${dir}")
  endif()
  set(${out} "${full}" PARENT_SCOPE)
endfunction()

dc_full(CMAKE_INSTALL_FULL_BINDIR "${DC_CFG_BINDIR}" PLAIN)
dc_full(CMAKE_INSTALL_FULL_SYSCONFDIR "${DC_CFG_SYSCONFDIR}" SYSCONF)
dc_full(dc_datadir "${DC_CFG_DATADIR}" PLAIN)
dc_full(dc_unitdir "${DC_CFG_UNITDIR}" PLAIN)
dc_full(dc_sysusersdir "${DC_CFG_SYSUSERSDIR}" PLAIN)
dc_full(dc_tmpfilesdir "${DC_CFG_TMPFILESDIR}" PLAIN)
set(dc_confdir "${CMAKE_INSTALL_FULL_SYSCONFDIR}/dmarc-collector")
set(dc_dashboards "${dc_datadir}/dmarc-collector/grafana/dashboards")

set(rw OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# The systemd unit and the tmpfiles.d entries.
configure_file("${DC_SRC}/packaging/systemd/dmarc-collector.service.in"
  "${DC_STAGE}/dmarc-collector.service" @ONLY)
configure_file("${DC_SRC}/packaging/tmpfiles.d/dmarc-collector.conf.in"
  "${DC_STAGE}/tmpfiles.conf" @ONLY)
file(INSTALL DESTINATION "${dc_unitdir}" TYPE FILE PERMISSIONS ${rw}
  FILES "${DC_STAGE}/dmarc-collector.service")
file(INSTALL DESTINATION "${dc_sysusersdir}" TYPE FILE PERMISSIONS ${rw}
  FILES "${DC_SRC}/packaging/sysusers.d/dmarc-collector.conf")
file(INSTALL DESTINATION "${dc_tmpfilesdir}" TYPE FILE PERMISSIONS ${rw}
  RENAME dmarc-collector.conf FILES "${DC_STAGE}/tmpfiles.conf")

# The Grafana dashboards provider, its path pointed at the installed dashboards
# (the example in the source tree names Grafana's own directory).
file(READ "${DC_SRC}/examples/grafana/provisioning/dashboards/dmarc.yaml" yaml)
set(old_path "path: /var/lib/grafana/dashboards/dmarc")
set(old_note "# Copy to /etc/grafana/provisioning/dashboards/ and the JSON files from\n# examples/grafana/dashboards/ to the path below.")
string(FIND "${yaml}" "${old_path}" at_path)
string(FIND "${yaml}" "${old_note}" at_note)
if(at_path EQUAL -1 OR at_note EQUAL -1)
  message(FATAL_ERROR "examples/grafana/provisioning/dashboards/dmarc.yaml changed: "
    "update cmake/install_generated.cmake (the provider's path and its comment)")
endif()
string(REPLACE "${old_path}" "path: ${dc_dashboards}" yaml "${yaml}")
string(REPLACE "${old_note}" "# Installed by dmarc-collector: copy or link to /etc/grafana/provisioning/dashboards/;\n# the path below is where the dashboards were installed." yaml "${yaml}")
file(WRITE "${DC_STAGE}/grafana-dashboards.yaml" "${yaml}")
file(INSTALL DESTINATION "${dc_datadir}/dmarc-collector/grafana/provisioning/dashboards"
  TYPE FILE PERMISSIONS ${rw} RENAME dmarc.yaml FILES "${DC_STAGE}/grafana-dashboards.yaml")

# The example configuration: 0640 in a 0750 directory (tmpfiles.d gives both
# to the group dmarc-collector).  Kept when already installed, unless staging.
set(dst "$ENV{DESTDIR}${dc_confdir}/dmarc-collector.conf")
if("$ENV{DESTDIR}" STREQUAL "" AND EXISTS "${dst}")
  message(STATUS "Kept: ${dst} (already there; the new example is in the doc examples)")
else()
  file(INSTALL DESTINATION "${dc_confdir}" TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ
    FILES "${DC_SRC}/examples/dmarc-collector.conf")
  file(CHMOD "$ENV{DESTDIR}${dc_confdir}" DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE)
endif()
