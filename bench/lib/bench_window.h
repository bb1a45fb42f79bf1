/* flink-bench window: a keyed event-time window SUM (tumbling, sliding or session)
 * through the engine against a plain C loop doing the same computation, in one run. */
#ifndef FL_BENCH_WINDOW_H
#define FL_BENCH_WINDOW_H

/* argv[1] is "window"; the options follow. Prints one JSON line. Returns 0, 1 when a
 * run failed or the engine's results differ from the loop's, 2 for bad options. */
int fl_bench_window_main(int argc, char **argv);

#endif
