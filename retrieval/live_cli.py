"""Command line for a living index: `update`, `delete`, and the filter options of `query`. Parsing and printing only."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import numpy as np

from . import distributed_cli
from .cli_help import command


def filter_args(p: argparse.ArgumentParser) -> None:
    """--act, --jurisdiction, --as-of, --filter; the group's text is the grammar of filters.py's docstring."""
    from . import filters

    g = p.add_argument_group("filters (only documents that match are searched)",
                             filters.__doc__.split("\n\n", 1)[1].strip())
    g.add_argument("--act", help="only documents of this act, e.g. IPC")
    g.add_argument("--jurisdiction", help="only documents of this jurisdiction, e.g. IN")
    g.add_argument("--as-of", metavar="YYYY-MM-DD", help="only documents in force on this date")
    g.add_argument("--filter", metavar="EXPR", help="e.g. \"act in (IPC, CrPC) and valid_from >= 2000-01-01\"")


def allowed(retriever, args: argparse.Namespace) -> np.ndarray | None:
    """The allowed document rows the filter options select (None: no filter given)."""
    if not (args.act or args.jurisdiction or args.as_of or args.filter):
        return None
    return retriever.where(args.filter, act=args.act, jurisdiction=args.jurisdiction, as_of=args.as_of)


def update_parsers(sub) -> None:
    """The `update` and `delete` commands."""
    u = command(sub, "update", "bring an index in line with a corpus: add new ids, re-index changed records, "
                               "remove missing ids (only changed texts are encoded)", """
retrieval update index/amend docs/examples/statutes-v2.jsonl --dry-run   # the plan, nothing written
retrieval update index/amend docs/examples/statutes-v2.jsonl""")
    u.add_argument("index", help="index folder")
    u.add_argument("corpus", help="the corpus as it is now (folder, .jsonl or .csv)")
    u.add_argument("--keep-missing", action="store_true", help="keep documents the corpus no longer has")
    u.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    u.add_argument("--json", action="store_true", help="print the plan as JSON")
    distributed_cli.add_args(u)
    u.set_defaults(func=cmd_update)
    d = command(sub, "delete", "remove documents from an index by id", """
retrieval delete index/amend IPC-124A""")
    d.add_argument("index", help="index folder")
    d.add_argument("ids", nargs="+", metavar="ID", help="id of a document to remove (one or more)")
    d.set_defaults(func=cmd_delete)


def cmd_update(args: argparse.Namespace) -> int:
    """Read the corpus, plan against the index, and (unless --dry-run) write the updated index's next generation."""
    from .corpus import read_corpus
    from .spec import IndexSpec

    spread = distributed_cli.Spread(args, args.index)  # devices or Ray that cannot be used stop it first
    docs = read_corpus(args.corpus)
    spec = IndexSpec.of_index(args.index)  # the model the index was built with, as this machine loads it
    if args.dry_run:
        from .terminal import printable

        plan = _dry_run(_load(args.index, spec.make_encoder), docs, args.keep_missing)
        for doc_id in plan.added:
            print(f"+ {printable(doc_id)}")
        for doc_id, fields in plan.changes.items():  # the text or title (encoded again), or metadata only
            print(f"~ {printable(doc_id)}: {', '.join(fields)}{'' if {'title', 'text'} & set(fields) else ' (metadata only)'}")
        for doc_id in plan.removed:
            print(f"- {printable(doc_id)}")
        _report(plan, args, "plan (dry run, nothing written): ")
        return 0
    code = _locked(args, lambda r: r.update_to(docs, keep_missing=args.keep_missing, progress=True),
                   spread.spec(spec).make_encoder)
    spread.finish()
    return code


def _dry_run(retriever, docs: list, keep_missing: bool):
    """The update's plan with what each changed record changes and how many texts it would encode."""
    from .updates import changed_fields, plan_update, to_encode

    current = retriever.documents()
    plan, after = plan_update(current, docs, keep_missing)
    before, now = {d.id: d for d in current}, {d.id: d for d in docs}
    plan.changes = {i: changed_fields(before[i], now[i]) for i in plan.changed}
    plan.to_encode = to_encode(retriever.leg, current, after)
    return plan


def cmd_delete(args: argparse.Namespace) -> int:
    """Remove the documents with the given ids (unknown ids: error, nothing written)."""
    return _locked(args, lambda r: r.delete(args.ids))


def _locked(args: argparse.Namespace, change, encoder: Callable[[], object] | None = None) -> int:
    """Load (the dense leg's encoder made by `encoder` when given), change and save the index under its build lock
    (a second update waits for the first)."""
    from .index.format import index_lock

    t = time.perf_counter()
    with index_lock(args.index):
        retriever = _load(args.index, encoder)
        plan = change(retriever)
        if plan.added or plan.changed or plan.removed:
            retriever.save(args.index)
    plan.seconds = time.perf_counter() - t
    _report(plan, args, "" if plan.added or plan.changed or plan.removed else "nothing to change: ")
    return 0


def _load(index: str, encoder: Callable[[], object] | None = None):
    from .retriever import HybridRetriever

    return HybridRetriever.load(index, encoder=encoder)


def _report(plan, args: argparse.Namespace, prefix: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(plan.to_dict(), ensure_ascii=False))
    print(f"{prefix}{plan.summary()} -> {args.index}", file=sys.stderr)
