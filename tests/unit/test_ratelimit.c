/*
 * test_ratelimit.c - dc_ratelimit lets one caller through per gap: a table
 * of times and whether each passes, and threads racing on one limiter (one
 * winner per instant, however many ask).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dc_ratelimit.h"

/* A sequence of takes: the time of each and whether it must pass. */
static void
test_sequence(void **state)
{
	static const struct {
		int64_t gap;
		int64_t now[8];
		int pass[8];
		int n;
	} cases[] = {
		/* the first passes whatever the time, then one per gap */
		{ 100, { 0, 1, 99, 100, 150, 199, 200, 450 }, { 1, 0, 0, 1, 0, 0, 1, 1 }, 8 },
		{ 100, { 5000, 5099, 5100 }, { 1, 0, 1 }, 3 },
		/* a time before the last one (another thread's clock read) is refused */
		{ 100, { 1000, 900, 1099, 1100 }, { 1, 0, 0, 1 }, 4 },
		/* gap 0: everything passes, but never backwards */
		{ 0, { 7, 7, 8, 6 }, { 1, 1, 1, 0 }, 4 },
		/* a negative gap is taken as 0 */
		{ -5, { 1, 1 }, { 1, 1 }, 2 },
	};
	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		dc_ratelimit r;

		dc_ratelimit_init(&r, cases[c].gap);
		for (int i = 0; i < cases[c].n; i++) {
			bool got = dc_ratelimit_take(&r, cases[c].now[i]);
			if (got != (cases[c].pass[i] != 0))
				fail_msg("case %zu, take %d (now %lld): got %d, expected %d", c, i,
					(long long)cases[c].now[i], got, cases[c].pass[i]);
		}
	}
}

#define THREADS 8
#define ROUNDS  2000

typedef struct racer {
	dc_ratelimit *r;
	pthread_barrier_t *start;
	int passed[ROUNDS];
} racer;

/* Thread: takes at the instants 0, 10, 20 ... (gap 10) and notes which passed. */
static void *
race(void *arg)
{
	racer *x = arg;

	pthread_barrier_wait(x->start);
	for (int i = 0; i < ROUNDS; i++) {
		/* every thread asks several times at each instant */
		for (int k = 0; k < 3; k++)
			x->passed[i] += dc_ratelimit_take(x->r, (int64_t)i * 10);
	}
	return NULL;
}

/* Threads asking at the same instants: exactly one passes per instant (the
 * threads drift apart, so an instant may be refused to one thread because
 * another was already at the next: at most one, never two). */
static void
test_threads(void **state)
{
	static racer x[THREADS];
	pthread_t t[THREADS];
	pthread_barrier_t start;
	dc_ratelimit r;
	int total = 0;

	(void)state;
	dc_ratelimit_init(&r, 10);
	pthread_barrier_init(&start, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		x[i] = (racer){ .r = &r, .start = &start };
		assert_int_equal(pthread_create(&t[i], NULL, race, &x[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);
	for (int i = 0; i < ROUNDS; i++) {
		int n = 0;

		for (int k = 0; k < THREADS; k++)
			n += x[k].passed[i];
		if (n > 1)
			fail_msg("instant %d let %d callers through", i, n);
		total += n;
	}
	/* the last instant is always reached by the slowest thread, and the
	 * limiter moves only forwards: a fair share of instants passed */
	assert_true(total >= 1);
	assert_true(total <= ROUNDS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sequence),
		cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
