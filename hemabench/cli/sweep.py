"""``hemabench sweep``: ``hemabench run`` as one job array, one element per encoder (submitit)."""

from __future__ import annotations

import shutil
from pathlib import Path

from hemabench.cli.common import print_table
from hemabench.cli.run import add_run_arguments, build_run, limits, print_summary, require_results
from hemabench.errors import HemabenchError


def add_parser(commands) -> None:
    sweep = commands.add_parser("sweep", help="submit encoders x tasks as a job array (SLURM, or local processes)",
                                description="Submit `hemabench run` as one job array, one element per encoder. "
                                "Re-running the same command resumes: current results and cached embeddings are "
                                "reused. See docs/cluster.md.")
    add_run_arguments(sweep, "encoder to evaluate, one job each (repeatable; default: the suite's encoders)")

    jobs = sweep.add_argument_group("jobs")
    jobs.add_argument("--executor", choices=("slurm", "local", "debug"),
                      help="slurm (sbatch; the default where sbatch is on PATH), local (one process per job on "
                           "this machine) or debug (in this process, one job after the other)")
    jobs.add_argument("--log-dir", metavar="DIR", help="job scripts and logs, one folder per job "
                      "(default: <out>/sweep-logs)")
    jobs.add_argument("--wait", action="store_true", help="wait for the jobs and print the summary table")
    jobs.add_argument("--timeout-min", type=int, default=720, metavar="MIN", help="time limit per job (default 720)")
    jobs.add_argument("--gpus-per-node", type=int, metavar="N", help="GPUs per job (default: none requested on "
                      "SLURM; the GPUs visible here with --executor local)")
    jobs.add_argument("--tasks-per-node", type=int, default=1, metavar="N",
                      help="processes per job, torchrun-style (RANK, WORLD_SIZE, ...), e.g. one per GPU")

    slurm = sweep.add_argument_group("SLURM")
    slurm.add_argument("--partition", metavar="NAME")
    slurm.add_argument("--cpus-per-task", type=int, metavar="N")
    slurm.add_argument("--mem-gb", type=float, metavar="GB")
    slurm.add_argument("--array-parallelism", type=int, metavar="N", help="jobs running at once (default: all)")
    slurm.add_argument("--job-name", default="hemabench", metavar="NAME")
    slurm.add_argument("--slurm-param", action="append", metavar="KEY=VALUE",
                       help="any other sbatch option, e.g. account=proj or qos=high (repeatable; KEY alone for a flag)")
    sweep.set_defaults(handler=run_sweep)  # progress bars land in each job's <job id>_0_log.err


def run_sweep(args) -> int:
    from hemabench.pipeline.sweep import SweepFailed, SweepOptions, parse_slurm_params, resolve_encoders, submit, wait

    executor = args.executor or ("slurm" if shutil.which("sbatch") else None)
    if executor is None:
        raise HemabenchError("sbatch not found, so this is not a SLURM login node: use --executor local to run "
                             "the jobs as processes on this machine (or `hemabench run`)")
    suite, encoders, plan, options = build_run(args)
    encoders = resolve_encoders(encoders)
    log_dir = Path(args.log_dir) if args.log_dir else options.out / "sweep-logs"
    sweep = SweepOptions(executor=executor, log_dir=log_dir, job_name=args.job_name, partition=args.partition,
                         gpus_per_node=args.gpus_per_node, cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb,
                         timeout_min=args.timeout_min, array_parallelism=args.array_parallelism,
                         tasks_per_node=args.tasks_per_node, slurm_params=parse_slurm_params(args.slurm_param))
    jobs = submit(encoders, plan, options, sweep)
    print(f"suite {suite.name}: {len(encoders)} encoder(s) x {len(plan)} task/dataset pair(s){limits(suite, encoders)}"
          f" -> {options.out}/; "
          f"{len(jobs)} job(s) submitted ({executor} executor)")
    if not args.wait and executor != "debug":  # debug jobs run only when waited for
        print_table([{"job id": j.job_id, "encoder": j.encoder} for j in jobs])
        print(f"logs: {log_dir.absolute()}/<job id>/ (<job id>_<task>_log.out and .err)")
        if executor == "slurm":
            print(f"progress: squeue -j {jobs[0].job_id.split('_')[0]}")
        print("re-run this command to resume (finished results and cached embeddings are reused); add --wait for "
              "the summary table")
        print(f"when the jobs are done: hemabench leaderboard build --results {options.out}")
        return 0
    print(f"waiting for {len(jobs)} job(s); logs in {log_dir.absolute()}/")
    try:
        report = wait(jobs)
    except SweepFailed as exc:
        if exc.report.outcomes:
            print_summary(exc.report)
        raise
    print_summary(report)
    require_results(report, "sweep")
    return 0
