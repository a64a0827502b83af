# Installation and the Debian package (CPack): the icos binary, its systemd
# units, their default flags (/etc/default, conffiles), the deployment guide,
# and maintainer scripts that create the icos user and state directories.
#   cmake --preset release && cmake --build --preset release --target icos
#   cpack --config build/release/CPackConfig.cmake -B build/release/package   # icos_<version>_amd64.deb
# A cluster then installs with `apt install ./icos_*.deb` (docs/deploy.md).
install(TARGETS icos icos-shim RUNTIME DESTINATION bin COMPONENT icos)
install(FILES packaging/systemd/icos-server.service packaging/systemd/icos-agent.service
        DESTINATION lib/systemd/system COMPONENT icos)
install(FILES packaging/default/icos-server packaging/default/icos-agent
        DESTINATION /etc/default COMPONENT icos)
install(FILES docs/deploy.md docs/metrics.md docs/api.md README.md
        DESTINATION share/doc/icos COMPONENT icos)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME icos)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "icos")
set(CPACK_PACKAGE_CONTACT "icos maintainers <icos@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "one computer out of a cluster of mixed AI accelerators")
string(CONCAT CPACK_PACKAGE_DESCRIPTION
       "icos schedules training and inference jobs onto NVIDIA, Ascend, Cambricon, AMD, Hygon,\n"
       "Kunlunxin and other accelerators across a cluster. One binary: `icos server` (the\n"
       "controller), `icos agent` (a node) and the CLI; systemd units icos-server and icos-agent.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES TRUE)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # icos_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Libraries from what the binary links (dpkg-shlibdeps); vendor libraries
# (NVML, DCMI, ...) are loaded at run time where present and are not dependencies.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "iproute2")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "postgresql, python3-torch, prometheus")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${PROJECT_SOURCE_DIR}/packaging/debian/postinst;${PROJECT_SOURCE_DIR}/packaging/debian/prerm;"
    "${PROJECT_SOURCE_DIR}/packaging/debian/postrm;${PROJECT_SOURCE_DIR}/packaging/debian/conffiles")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
