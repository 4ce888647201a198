"""What a change of nerve.yaml changes: which sense groups must restart, start or stop, and which
workflows are added, removed or given new limits. Pure: the kernel applies it."""

from __future__ import annotations

from dataclasses import dataclass, field

from nerve_core import NerveConfig


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    groups_added: list[str] = field(default_factory=list)
    groups_removed: list[str] = field(default_factory=list)
    groups_restarted: list[str] = field(default_factory=list)  # a sense added, removed or changed
    reflexes_changed: bool = False
    workflows_added: list[str] = field(default_factory=list)
    workflows_removed: list[str] = field(default_factory=list)
    workflows_changed: list[str] = field(default_factory=list)  # limits only: no restart
    limits_changed: bool = False
    other_changed: list[str] = field(default_factory=list)  # applied as they are read

    @property
    def empty(self) -> bool:
        return not any(
            (
                self.groups_added,
                self.groups_removed,
                self.groups_restarted,
                self.reflexes_changed,
                self.workflows_added,
                self.workflows_removed,
                self.workflows_changed,
                self.limits_changed,
                self.other_changed,
            )
        )

    def summary(self) -> dict[str, object]:
        """What changed, for the `config.reload` row (empty parts left out)."""
        fields = {
            "groups_added": self.groups_added,
            "groups_removed": self.groups_removed,
            "groups_restarted": self.groups_restarted,
            "reflexes_changed": self.reflexes_changed,
            "workflows_added": self.workflows_added,
            "workflows_removed": self.workflows_removed,
            "workflows_changed": self.workflows_changed,
            "limits_changed": self.limits_changed,
            "other_changed": self.other_changed,
        }
        return {key: value for key, value in fields.items() if value}


def diff_configs(old: NerveConfig, new: NerveConfig) -> ConfigDiff:
    old_groups, new_groups = old.sense_groups(), new.sense_groups()
    restarted = []
    for name in sorted(set(old_groups) & set(new_groups)):
        members = set(old_groups[name]) | set(new_groups[name])
        if old_groups[name] != new_groups[name] or any(
            old.senses.get(sense) != new.senses.get(sense) for sense in members
        ):
            restarted.append(name)
    other = [key for key in ("max_rounds", "store") if getattr(old, key) != getattr(new, key)]
    return ConfigDiff(
        groups_added=sorted(set(new_groups) - set(old_groups)),
        groups_removed=sorted(set(old_groups) - set(new_groups)),
        groups_restarted=restarted,
        reflexes_changed=old.reflexes != new.reflexes,
        workflows_added=sorted(set(new.workflows) - set(old.workflows)),
        workflows_removed=sorted(set(old.workflows) - set(new.workflows)),
        workflows_changed=sorted(
            name
            for name in set(old.workflows) & set(new.workflows)
            if old.workflows[name] != new.workflows[name]
        ),
        limits_changed=old.groups != new.groups,
        other_changed=other,
    )
