"""When one machine is not enough: grade a class and check the course as SageMaker Processing jobs.

``labkit grade LAB FOLDER --on sagemaker`` and ``labkit check --on sagemaker`` fan the work out
as Processing jobs instead of running it on this machine. The course's own grader runs inside
each job (the container is the first wall, the grader's isolation inside it the second); this
package only plans, ships, watches and merges. See docs/grading-at-scale.md.

Modules, in the order a run uses them:

- :mod:`~labkit.scale.plan`: the estimate printed before anything starts (wall time and cost
  from the measured per-submission CPU seconds in ``measured.json`` and the price catalogue);
- :mod:`~labkit.scale.shards`: split the class into shards and pack them;
- :mod:`~labkit.scale.fleet`: upload, create the jobs (guarded, tagged), watch them, retry a
  failed shard a bounded number of times, download results, stop and clean up;
- :mod:`~labkit.scale.entry`: the small entry script each job runs (``python3 -m labkit.scale.entry``);
- :mod:`~labkit.scale.merge`: one ``grades.csv``, feedback folder, gradebook and report;
- :mod:`~labkit.scale.grading` and :mod:`~labkit.scale.checking`: the two commands.

Offline, the same requests go to the offline backend, whose processing engine runs the entry
script as a process per job, in parallel on this machine.
"""

from __future__ import annotations

import argparse

DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"


class ScaleError(RuntimeError):
    """A run on SageMaker could not start or finish; the message says why and what to do."""


def add_arguments(parser: argparse.ArgumentParser, *, instances_help: str) -> None:
    """The ``--on sagemaker`` options shared by ``labkit grade`` and ``labkit check``."""
    parser.add_argument("--on", choices=("local", "sagemaker"), default="local",
                        help="where the work runs: this machine (default) or SageMaker Processing jobs "
                             "(on the offline backend they run as processes here; see docs/grading-at-scale.md)")
    group = parser.add_argument_group("with --on sagemaker")
    group.add_argument("--instances", type=int, default=4, help=instances_help)
    group.add_argument("--instance-type", default=DEFAULT_INSTANCE_TYPE,
                       help=f"ml.* processing instance type (default {DEFAULT_INSTANCE_TYPE})")
    group.add_argument("--image", help="the course image (default $LABKIT_GRADER_IMAGE, else "
                                       "<account>.dkr.ecr.<region>.amazonaws.com/labkit-grader:<version>)")
    group.add_argument("--role", help="execution role ARN of the jobs (default: the lab's execution role)")
    group.add_argument("--max-cost", type=float, help="spending cap in USD for the run (default "
                                                      "$LABKIT_SPEND_CAP_USD, else the guard's cap)")
    group.add_argument("--max-attempts", type=int, default=3, help="attempts per job, first included (default 3)")
    group.add_argument("--dry-run", action="store_true", help="print the plan and the estimate, start nothing")
    group.add_argument("--keep-s3", action="store_true", help="keep the run's S3 prefix (default: deleted)")


__all__ = ["DEFAULT_INSTANCE_TYPE", "ScaleError", "add_arguments"]
