"""``hemabench cache ls|rm``: see and prune the embedding cache."""

from __future__ import annotations

from hemabench.cli.common import print_json, print_table
from hemabench.errors import HemabenchError


def add_parser(commands) -> None:
    cache = commands.add_parser("cache", help="list or remove cached embeddings")
    sub = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    ls = sub.add_parser("ls", help="list cache entries")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=run_ls)
    rm = sub.add_parser("rm", help="remove cache entries by key prefix, encoder or dataset")
    rm.add_argument("keys", nargs="*", help="key prefixes (see `cache ls`)")
    rm.add_argument("--encoder")
    rm.add_argument("--dataset")
    rm.add_argument("--all", action="store_true", help="remove every entry")
    rm.add_argument("--pixels", action="store_true", help="remove the pixel cache (pre-resized images, --pixel-cache)")
    rm.set_defaults(handler=run_rm)


def run_ls(args) -> int:
    from hemabench.embeddings import list_entries
    from hemabench.paths import cache_dir

    rows = list_entries()
    if args.json:
        print_json({"cache": str(cache_dir() / "embeddings"), "entries": rows})
        return 0
    print(f"embedding cache: {cache_dir() / 'embeddings'}")
    pixels = list((cache_dir() / "pixels").rglob("*.npy"))
    if pixels:
        size = sum(f.stat().st_size for f in pixels) / 2**30
        print(f"pixel cache: {cache_dir() / 'pixels'} ({len(pixels)} chunks, {size:.2f} GB; "
              "`hemabench cache rm --pixels` removes it)")
    print_table([{"key": r["key"][:12], "encoder": r.get("encoder", "?"), "dataset": r.get("dataset", "?"),
                  "n": r.get("n", ""), "dim": r.get("dim", ""), "MB": round(r["bytes"] / 2**20, 2),
                  "state": r.get("state", "complete")} for r in rows])
    return 0


def run_rm(args) -> int:
    import shutil

    from hemabench.datasets.custom import absolute_text, custom_name, is_custom
    from hemabench.embeddings import list_entries, remove_entries
    from hemabench.paths import cache_dir

    if not (args.keys or args.encoder or args.dataset or args.all or args.pixels):
        raise HemabenchError("say what to remove: key prefixes, --encoder, --dataset, --all or --pixels")
    if args.pixels:
        shutil.rmtree(cache_dir() / "pixels", ignore_errors=True)
        print("removed the pixel cache")
    if args.keys or args.encoder or args.dataset or args.all:
        keys = [r["key"] for r in list_entries()] if args.all else args.keys
        dataset = args.dataset
        if dataset and is_custom(dataset):  # entries name own data by its result name, custom-<name>
            dataset = custom_name(absolute_text(dataset))
        removed = remove_entries(keys, args.encoder, dataset)
        print(f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'}")
        if not removed:
            print("no entry matched; `hemabench cache ls` lists the entries with their encoder and dataset names")
    return 0
