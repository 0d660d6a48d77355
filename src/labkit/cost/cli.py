"""``labkit cleanup`` and ``labkit cost``.

    labkit cleanup [--lab NAME] [--region R] [--yes]
        List what labs left tagged labkit:lab in the account of your credentials (dry run);
        with --yes stop or delete it. Offline (the default backend), what is still running or
        billed in your shared offline backend.
    labkit cost show [--service sagemaker|ec2|bedrock|storage] [--match TEXT] [--unverified]
        The price catalogue with each price's source and date.
    labkit cost refresh [--only FILE] [--dry-run]
        Read current prices from the AWS Pricing API (needs credentials) into data/pricing/.
    labkit cost summary DIR
        Total the <lab>.bill.json files a course run wrote to DIR (LABKIT_REPORT_DIR).
"""

from __future__ import annotations

import argparse
import os
import sys

from . import catalogue as cat


def main_cleanup(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="labkit cleanup", description="Find (and with --yes remove) resources "
                                     "that labs left behind, by their labkit:lab tag.")
    parser.add_argument("--lab", help="only this lab's resources (default: every lab's)")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    parser.add_argument("--yes", action="store_true", help="really stop and delete (default: dry run)")
    args = parser.parse_args(argv)
    untagged = False
    if (os.environ.get("LABKIT_BACKEND") or "offline").strip().lower() == "offline":
        # Offline: this process's backend, else the user's shared one if it runs; all it bills is theirs.
        from .. import offline
        from ..offline import shared

        if not offline.connected():
            state = shared.read_state()
            if state is None or not shared.answering(state):
                print("labkit cleanup: the offline backend is not running, so nothing is left running. "
                      "(For a real account: LABKIT_BACKEND=sandbox labkit cleanup.)")
                return 0
            offline.attach({**state, "config_dir": str(shared.home())})
        args.region, untagged = offline.REGION, True
    if not args.region:
        print("labkit cleanup: no region; pass --region or export AWS_REGION.", file=sys.stderr)
        return 2
    from .cleanup import delete_leftovers, find_leftovers

    try:
        leftovers = find_leftovers(args.lab, region=args.region, untagged=untagged)
    except Exception as err:
        print(f"labkit cleanup: cannot list resources ({type(err).__name__}: {err}). "
              "Check your AWS credentials (aws sts get-caller-identity).", file=sys.stderr)
        return 1
    who = f"lab {args.lab!r}" if args.lab else "any lab"
    if not leftovers:
        print(f"Nothing tagged labkit:lab for {who} in {args.region}.")
        return 0
    print(f"Tagged for {who} in {args.region}:")
    for leftover in leftovers:
        print(f"  {leftover}")
    if not args.yes:
        print("Dry run: nothing was changed. Run again with --yes to stop and delete the above.")
        return 0
    done, failed = delete_leftovers(leftovers, region=args.region)
    for line in done:
        print(f"removed {line}")
    for line in failed:
        print(f"FAILED  {line}", file=sys.stderr)
    return 1 if failed else 0


def _show(args: argparse.Namespace) -> int:
    catalogue = cat.load()
    prices = [p for p in catalogue.prices if not args.service or p.file == args.service]
    if args.match:
        needle = args.match.lower()
        prices = [p for p in prices if needle in f"{p.sku} {p.attrs}".lower()]
    if args.unverified:
        prices = [p for p in prices if not p.verified]
    for p in prices:
        flag = "" if p.verified else "  (unverified)"
        print(f"{p.file:<9} {p.sku:<48} {p.price_usd:>12.7g} USD/{p.unit:<10} {p.region}  "
              f"{p.read_on}{flag}  {p.source}")
    print(f"{len(prices)} prices; {sum(not p.verified for p in prices)} unverified (recalled, or read from a stored "
          "copy of a pricing page). "
          "See data/pricing/README.md.")
    return 0


def _refresh(args: argparse.Namespace) -> int:
    import boto3

    from .refresh import refresh

    if os.environ.get("LABKIT_BACKEND", "offline") == "offline" and not args.offline_ok:
        print("labkit cost refresh reads the real AWS Pricing API: export LABKIT_BACKEND=sandbox with AWS "
              "credentials (any account; GetProducts is free), then run it again.", file=sys.stderr)
        return 2
    client = boto3.client("pricing", region_name="us-east-1")
    try:
        report = refresh(client, write=not args.dry_run, only=args.only)
    except Exception as err:
        print(f"labkit cost refresh: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    for key, items in report.items():
        print(f"{key}: {len(items)}")
        if key in ("updated", "ambiguous"):
            for item in items:
                print(f"  {item}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from .meter import total_reports

    totals = total_reports(args.directory)
    for lab, total in totals.items():
        print(f"{lab:<40} ${total:,.4f}")
    print(f"{'total':<40} ${sum(totals.values()):,.4f}")
    return 0


def main_cost(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="labkit cost", description="The price catalogue: show, refresh, summary.")
    sub = parser.add_subparsers(dest="action")
    show = sub.add_parser("show", help="print the catalogue")
    show.add_argument("--service", choices=[f for f in cat.FILES if f != "spot"])
    show.add_argument("--match", help="only prices whose SKU or attributes contain this text")
    show.add_argument("--unverified", action="store_true", help="only recalled (unverified) prices")
    ref = sub.add_parser("refresh", help="read current prices from the AWS Pricing API")
    ref.add_argument("--only", choices=[f for f in cat.FILES if f != "spot"])
    ref.add_argument("--dry-run", action="store_true", help="report without writing the files")
    ref.add_argument("--offline-ok", action="store_true", help=argparse.SUPPRESS)
    summ = sub.add_parser("summary", help="total the <lab>.bill.json files of a course run")
    summ.add_argument("directory")
    args = parser.parse_args(argv or ["show"])
    return {"show": _show, "refresh": _refresh, "summary": _summary}[args.action](args)
