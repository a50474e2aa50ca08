import json
import sys

from django.core.management.base import BaseCommand, CommandError

from guard import policy
from guard.scanner import scan_many

BATCH = 256


class Command(BaseCommand):
    help = (
        "Scan a JSONL file (one object with a 'text' field per line, and optionally a message 'role': user, "
        "tool, document...) with the default policy; print one verdict a line: flagged, score, rules, action."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="JSONL file, or - for standard input")

    def handle(self, *args, **options):
        source = sys.stdin if options["path"] == "-" else open(options["path"], encoding="utf-8")  # noqa: SIM115
        texts: list[str] = []
        roles: list[str] = []
        with source:
            for number, line in enumerate(source, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    texts.append(str(row["text"]))
                    roles.append(str(row.get("role") or "user"))
                except (ValueError, KeyError, TypeError, AttributeError):
                    raise CommandError(f"line {number}: expected a JSON object with a 'text' field") from None
                if len(texts) == BATCH:
                    self._emit(texts, roles)
                    texts, roles = [], []
        if texts:
            self._emit(texts, roles)

    def _emit(self, texts: list[str], roles: list[str]) -> None:
        for verdict, role in zip(scan_many(texts), roles, strict=True):
            verdict.action = policy.default_thresholds_for_role(role).action(verdict.score)
            self.stdout.write(json.dumps(verdict.as_json()))
