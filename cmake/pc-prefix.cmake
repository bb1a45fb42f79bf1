# Install-time helper: copies FL_PC_IN to FL_PC_OUT with the "prefix=" line set to the
# prefix being installed to (CMAKE_INSTALL_PREFIX as `cmake --install --prefix` sets it).
file(READ "${FL_PC_IN}" _pc)
string(REGEX REPLACE "^prefix=[^\n]*" "prefix=${CMAKE_INSTALL_PREFIX}" _pc "${_pc}")
file(WRITE "${FL_PC_OUT}" "${_pc}")
