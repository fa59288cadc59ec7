"""Publishing decided alerts to the terminal: the demo's stand-in until Slack is wired in."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from secbot.domain.alert import Alert
from secbot.pipeline.decision import Decision


@dataclass
class ConsolePublisher:
    """Prints one line per alert and keeps the decisions for a closing summary."""

    console: Console
    show_messages: bool = False
    decisions: list[Decision] = field(default_factory=list)
    _shown: set[str] = field(default_factory=set, repr=False)

    async def publish(self, alert: Alert, decision: Decision) -> None:
        if alert.uuid in self._shown:
            return  # the contract: idempotent per alert uuid (a retry must not print it twice)
        self._shown.add(alert.uuid)
        self.decisions.append(decision)
        if decision.auto_close:
            outcome = f"[green]auto-closed[/] ({decision.close_reason})"
        elif decision.duplicate_of:
            first, count = decision.duplicate_of[:8], decision.duplicate_count
            outcome = f"[yellow]threaded[/] under {first} (×{count})"
        else:
            outcome = "[bold]posted[/]"
        self.console.print(
            f"{decision.channel or '(no channel)':<14} {decision.rule_id or '(unmatched)':<24} "
            f"{alert.uuid[:8]}  {outcome}",
            highlight=False,
        )
        for note in decision.notes:
            self.console.print(f"{'':<40}[dim]note: {note}[/]", highlight=False, markup=True)
        if self.show_messages:
            for block in decision.message.get("blocks", []):
                text = (
                    block.get("text", {}).get("text")
                    if isinstance(block.get("text"), dict)
                    else None
                )
                if text:
                    self.console.print(f"{'':<8}│ {text}", markup=False, highlight=False)

    async def correct(self, alert: Alert, decision: Decision, note: str) -> None:
        self.console.print(f"{'':<40}[red]correction for {alert.uuid[:8]}: {note}[/]",
                           highlight=False)

    def summary(self) -> Table:
        table = Table(title="Demo summary")
        for column in ("rule", "posted", "threaded", "auto-closed"):
            table.add_column(column)
        rows: dict[str, list[int]] = {}
        for d in self.decisions:
            row = rows.setdefault(d.rule_id or "(unmatched)", [0, 0, 0])
            row[0] += d.post
            row[1] += d.deduplicated
            row[2] += d.auto_close
        for rule_id, (posted, threaded, closed) in sorted(rows.items()):
            table.add_row(rule_id, str(posted), str(threaded), str(closed))
        return table
