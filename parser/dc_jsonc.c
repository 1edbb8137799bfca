/*
 * dc_jsonc.c - json-c's run-time version (dc_jsonc.h).
 */
#include "dc_jsonc.h"

#include <stdio.h>

#include <json-c/json_c_version.h>

size_t
dc_jsonc_libversions(dc_libversion *v, size_t max)
{
	if (max == 0)
		return 0;
	v[0].name = "json-c";
	snprintf(v[0].version, sizeof(v[0].version), "%s", json_c_version());
	return 1;
}
