# install.cmake - what `cmake --install` puts where, besides the program
# (filled in by issue 12: man pages, systemd, configuration, Grafana, SQL).
