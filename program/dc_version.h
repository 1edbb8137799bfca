/*
 * dc_version.h - what `dmarc-collector --version` prints: the version
 * (CMake's project version, plus `git describe` when built from a checkout;
 * cmake/version.cmake) and the run-time versions of the libraries the
 * program runs with, which is what a bug report needs.
 */
#ifndef DC_VERSION_H
#define DC_VERSION_H

#include <stdio.h>

/* Writes the version lines to out:
 *   dmarc-collector 1.0.0 (git 1e2b435)
 *     libcurl 7.88.1 (OpenSSL/3.0.17)
 *     ...                                one line per library */
void dc_version_print(FILE *out);

/* The version ("1.0.0") and the git description ("" outside a checkout):
 * static strings, for the build_info metric. */
const char *dc_version_string(void);
const char *dc_version_git(void);

#endif
