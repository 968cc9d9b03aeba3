"""What a site build may delete: only the files an earlier build wrote, listed in a manifest.

``leaderboard build --out .`` once removed a user's own ``figures/``, ``tasks/`` and
``encoders/`` and overwrote their ``index.html``. Now each build lists the files it wrote in
``.hemabench-site.json``; a rebuild removes exactly those. A folder that holds any of the names
a build writes but no manifest is refused, untouched.

A build never works through a symbolic link: a manifest that lists ``tasks/x`` while
``tasks`` links to another folder once deleted the file in that other folder. A link under
any name a build writes is refused before anything is removed, and removal checks each
path component again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hemabench.errors import HemabenchError
from hemabench.files.atomic import atomic_write_text

MANIFEST = ".hemabench-site.json"


def _files_under(out: Path, owned: tuple[str, ...]) -> set[str]:
    found = set()
    for name in owned:
        path = out / name
        if path.is_file() or path.is_symlink():
            found.add(name)
        elif path.is_dir():
            for root, _, files in os.walk(path):
                found.update((Path(root) / f).relative_to(out).as_posix() for f in files)
    return found


def _links_under(out: Path, owned: tuple[str, ...]) -> list[Path]:
    """Symbolic links at or below the names a build writes (never followed)."""
    found = []
    for name in owned:
        if (out / name).is_symlink():
            found.append(out / name)
        elif (out / name).is_dir():
            for root, dirs, files in os.walk(out / name, followlinks=False):
                found += [Path(root) / f for f in dirs + files if (Path(root) / f).is_symlink()]
    return found


def _plain_inside(out: Path, rel: str) -> bool:
    """``out/rel`` is reached without any link, '..' or absolute part: a file of this site."""
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts:
        return False
    return not any((out.joinpath(*parts[:i])).is_symlink() for i in range(1, len(parts) + 1))


def prepare_out(out: Path, owned: tuple[str, ...]) -> set[str]:
    """Remove the previous build's files; returns the files under ``owned`` that are not ours
    (kept, and never listed in the new manifest). Refuses a folder with foreign site names
    or with links where a build writes."""
    manifest = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise HemabenchError(f"--out {out} is a file, not a folder")
    links = _links_under(out, owned) if out.is_dir() else []
    if links:
        raise HemabenchError(f"{links[0]} is a symbolic link ({len(links)} in all under the site's folders): a build "
                             "never writes or removes through links; nothing was changed; remove the link(s)")
    if manifest.is_file() and not manifest.is_symlink():
        try:
            written = json.loads(manifest.read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HemabenchError(f"{manifest}: not a readable site manifest ({exc}); remove the old site by hand") from None
        for rel in written:
            path = out / rel
            if isinstance(rel, str) and rel.split("/")[0] in owned and _plain_inside(out, rel) and path.is_file():
                path.unlink()
        for name in owned:  # drop folders the old build left empty, deepest first (links checked above)
            if (out / name).is_symlink():
                continue
            for root, _dirs, _files in sorted(os.walk(out / name, topdown=False), key=lambda r: -len(r[0])):
                if not os.listdir(root):
                    os.rmdir(root)
    else:
        clashes = [name for name in owned if (out / name).exists() or (out / name).is_symlink()]
        if clashes:
            raise HemabenchError(f"{out} already holds {', '.join(clashes)} that no leaderboard build wrote (no "
                                 f"{MANIFEST}): nothing was changed; use an empty or new --out folder")
    out.mkdir(parents=True, exist_ok=True)
    return _files_under(out, owned)


def write_manifest(out: Path, owned: tuple[str, ...], foreign: set[str]) -> None:
    files = sorted(_files_under(out, owned) - foreign)
    atomic_write_text(out / MANIFEST, json.dumps({"files": files}, indent=0))
