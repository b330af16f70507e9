// run_log.h: reading a training run's metrics.jsonl (the trainer writes one JSON object a
// line: {"step": N, "loss": ..., "lr": ..., ...} every train.log_steps, and
// {"step": N, "eval": {"Rprec": ..., ...}, ...} at each validation sweep).
#ifndef HYP_RUN_LOG_H
#define HYP_RUN_LOG_H

// The series of one metric: step-line keys (loss, mmse, ce, lr, grad_norm, ms, comm_ms, qps,
// tokens_per_s, mfu; gnorm, q/s, tok/s and MFU are accepted for them) or validation metrics (Rprec, nDCG@10,
// RR@10, ... as the run's eval.metrics named them). `run` is a run folder (its metrics.jsonl)
// or the file itself. *steps and *values are malloc'd; returns the number of points (0 when
// the run never logged that metric: the error then lists the metrics it has), or -1 with
// hyp_last_error() naming the file and line.
int runlog_series(const char *run, const char *metric, double **steps, double **values);

#endif
