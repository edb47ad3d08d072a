"""P runs of one architecture trained together (stacked parameters), or one after another."""

from scalarize.population.engine import choose_engine, measure, train_members
from scalarize.population.members import Member, architecture_key, member_name
from scalarize.population.stacked import StackedPopulation

__all__ = [
    "Member",
    "StackedPopulation",
    "architecture_key",
    "choose_engine",
    "measure",
    "member_name",
    "train_members",
]
