/*
 * dc_ratelimit.c - at most once per gap, lock-free (see dc_ratelimit.h).
 */
#include "dc_ratelimit.h"

void
dc_ratelimit_init(dc_ratelimit *r, int64_t gap)
{
	r->gap = gap < 0 ? 0 : gap;
	atomic_store(&r->last, INT64_MIN);
}

bool
dc_ratelimit_take(dc_ratelimit *r, int64_t now)
{
	int64_t last = atomic_load_explicit(&r->last, memory_order_relaxed);

	for (;;) {
		/* INT64_MIN: never taken; otherwise now - last without overflow */
		if (last != INT64_MIN && (now < last || now - last < r->gap))
			return false;
		if (atomic_compare_exchange_weak_explicit(
			    &r->last, &last, now, memory_order_relaxed, memory_order_relaxed))
			return true;
		/* another thread moved it (or a spurious failure): judge again */
	}
}
