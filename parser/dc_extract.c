/*
 * dc_extract.c - every report in one input, found by its bytes.
 * (The walk itself is written by the parser module; see dc_extract.h.)
 */
#include "dc_extract.h"

bool
dc_extract_is_fatal(dc_code code)
{
	return code == DC_EDB || code == DC_ENOMEM || code == DC_EIO || code == DC_EINTERRUPTED;
}
