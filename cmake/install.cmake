# install.cmake - what `cmake --install` puts where, besides the program
# (issue 12; the agreed layout, prefix /usr shown):
#
#   /usr/bin/dmarc-collector                          (CMakeLists.txt)
#   /usr/share/man/man1/dmarc-collector.1             docs/man/*.scd, built by scdoc
#   /usr/share/man/man5/dmarc-collector.conf.5          (option DC_MAN, default ON)
#   DC_SYSTEMD_UNITDIR/dmarc-collector.service        packaging/systemd/*.service.in
#   DC_SYSUSERSDIR/dmarc-collector.conf               packaging/sysusers.d/
#   DC_TMPFILESDIR/dmarc-collector.conf               packaging/tmpfiles.d/*.conf.in
#   /etc/dmarc-collector/dmarc-collector.conf         examples/dmarc-collector.conf, 0640,
#                                                     directory 0750 (group: tmpfiles.d)
#   /usr/share/doc/dmarc-collector/examples/dmarc-collector.conf
#   /usr/share/dmarc-collector/grafana/provisioning/{datasources,dashboards}/dmarc.yaml
#   /usr/share/dmarc-collector/grafana/provisioning/alerting/dmarc-alerts.yaml
#   /usr/share/dmarc-collector/grafana/dashboards/*.json
#   /usr/share/dmarc-collector/queries.sql            examples/queries.sql
#   /usr/share/dmarc-collector/alerts-mail.sh         examples/alerts-mail.sh, 0755: an [alerts] command
#
# The three DC_*DIR cache variables default to paths relative to the prefix
# (lib/systemd/system, lib/sysusers.d, lib/tmpfiles.d); a packager passes
# absolute ones (debian/rules: /lib/systemd/system).
#
# Files that name other installed paths (the unit's ExecStart and --config,
# the tmpfiles.d entries for the configuration directory, the Grafana
# provider's dashboards path) are generated when installing, from the prefix
# in effect then, so `cmake --install build --prefix /usr` installs files that
# agree with each other whatever prefix the build was configured with.  The
# one path compiled into the program, the default configuration file
# (DC_DEFAULT_CONFIG), follows the prefix given at configure time, as for any
# C program: configure with -DCMAKE_INSTALL_PREFIX=/usr for /etc/dmarc-collector.
#
# The example configuration is installed into the configuration directory
# only when it is not there yet, so a reinstall from source never overwrites
# an administrator's file; staged into a DESTDIR (packages) it always is, and
# the package manager handles it as a conffile.

set(DC_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
  "systemd system unit directory (relative: under the install prefix)")
set(DC_SYSUSERSDIR "lib/sysusers.d" CACHE STRING
  "sysusers.d directory (relative: under the install prefix)")
set(DC_TMPFILESDIR "lib/tmpfiles.d" CACHE STRING
  "tmpfiles.d directory (relative: under the install prefix)")
option(DC_MAN "Build and install the man pages (needs scdoc)" ON)

# The configuration file read when neither --config nor
# DMARC_COLLECTOR_CONFIG names one, if it exists (program/main.c).
target_compile_definitions(dmarc-collector PRIVATE
  DC_DEFAULT_CONFIG="${CMAKE_INSTALL_FULL_SYSCONFDIR}/dmarc-collector/dmarc-collector.conf")

# ---------------------------------------------------------------- man pages
if(DC_MAN)
  find_program(SCDOC scdoc REQUIRED)
  set(DC_MAN_PAGES dmarc-collector.1 dmarc-collector.conf.5)
  set(DC_MAN_OUT)
  foreach(page ${DC_MAN_PAGES})
    set(src ${CMAKE_SOURCE_DIR}/docs/man/${page}.scd)
    set(out ${CMAKE_BINARY_DIR}/man/${page})
    add_custom_command(
      OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
      COMMAND ${SCDOC} < ${src} > ${out}
      DEPENDS ${src}
      COMMENT "scdoc ${page}"
      VERBATIM)
    list(APPEND DC_MAN_OUT ${out})
    string(REGEX MATCH "[0-9]$" section ${page})
    install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endforeach()
  add_custom_target(dc_man ALL DEPENDS ${DC_MAN_OUT})
endif()

# ------------------------------------------------------- data, docs, Grafana
set(DC_DATA ${CMAKE_INSTALL_DATADIR}/dmarc-collector)
install(FILES examples/queries.sql DESTINATION ${DC_DATA})
install(PROGRAMS examples/alerts-mail.sh DESTINATION ${DC_DATA})
install(FILES examples/dmarc-collector.conf DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES examples/grafana/provisioning/datasources/dmarc.yaml
  DESTINATION ${DC_DATA}/grafana/provisioning/datasources)
install(FILES examples/grafana/provisioning/alerting/dmarc-alerts.yaml
  DESTINATION ${DC_DATA}/grafana/provisioning/alerting)
install(DIRECTORY examples/grafana/dashboards/ DESTINATION ${DC_DATA}/grafana/dashboards
  FILES_MATCHING PATTERN "*.json")

# ----------------------------------------- generated at install time (above)
install(CODE "
set(DC_SRC \"${CMAKE_SOURCE_DIR}\")
set(DC_STAGE \"${CMAKE_BINARY_DIR}/install-generated\")
set(DC_CFG_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
set(DC_CFG_SYSCONFDIR \"${CMAKE_INSTALL_SYSCONFDIR}\")
set(DC_CFG_DATADIR \"${CMAKE_INSTALL_DATADIR}\")
set(DC_CFG_UNITDIR \"${DC_SYSTEMD_UNITDIR}\")
set(DC_CFG_SYSUSERSDIR \"${DC_SYSUSERSDIR}\")
set(DC_CFG_TMPFILESDIR \"${DC_TMPFILESDIR}\")
")
install(SCRIPT cmake/install_generated.cmake)
