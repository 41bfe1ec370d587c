"""Queueing arithmetic for workforce planning: Erlang B and C, service level, average
speed of answer, required agents, and Little's law. Pure functions, no Django.

The model is M/M/N (Erlang C): work arrives at random (Poisson, rate λ), handle times
are exponential with mean AHT, N agents serve one queue in arrival order and nobody
gives up. The offered load A = λ · AHT is in Erlangs: how many agents the work keeps
busy on average. Every time argument of one call must be in the same unit (seconds,
minutes, hours: any, as long as it is one).

Erlang C is computed from Erlang B with the recursion
    B(0) = 1,  B(n) = A · B(n-1) / (n + A · B(n-1)),
    C(N) = N · B(N) / (N - A · (1 - B(N))),
whose terms stay in [0, 1]: no factorial or power of A is ever formed, so loads in the
hundreds or thousands of Erlangs neither overflow nor lose precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# A what-if beyond these is a typo, not a plan; they also bound the search below.
MAX_LOAD = 10_000.0
MAX_AGENTS = 100_000


def _check_load(agents: int, load: float) -> None:
    if agents < 0:
        raise ValueError(f"agents must not be negative (got {agents})")
    if not math.isfinite(load) or load < 0:
        raise ValueError(f"the offered load must be a finite number >= 0 (got {load})")


def offered_load(arrival_rate: float, handle_time: float) -> float:
    """A = λ · AHT in Erlangs (the rate per the unit the handle time is in)."""
    if arrival_rate < 0 or handle_time < 0:
        raise ValueError("arrival rate and handle time must not be negative")
    return arrival_rate * handle_time


def erlang_b(agents: int, load: float) -> float:
    """Blocking probability of N servers offered A Erlangs with no queue (Erlang B)."""
    _check_load(agents, load)
    blocking = 1.0
    for n in range(1, agents + 1):
        blocking = load * blocking / (n + load * blocking)
    return blocking


def _c_from_b(agents: int, load: float, blocking: float) -> float:
    if load == 0:
        return 0.0
    if agents <= load:
        return 1.0
    return agents * blocking / (agents - load * (1.0 - blocking))


def erlang_c(agents: int, load: float) -> float:
    """P_w: the probability that an arrival waits (all N agents busy), Erlang C.

    1.0 when N <= A: the queue then grows without bound and everyone waits.
    """
    return _c_from_b(agents, load, erlang_b(agents, load))


def service_level(agents: int, load: float, handle_time: float, answer_time: float) -> float:
    """SL = 1 - P_w · exp(-(N - A) · T / AHT): the share that waits at most T."""
    _check_load(agents, load)
    if handle_time <= 0:
        raise ValueError(f"the handle time must be above 0 (got {handle_time})")
    if answer_time < 0:
        raise ValueError(f"the answer time must not be negative (got {answer_time})")
    if load == 0:
        return 1.0
    if agents <= load:
        return 0.0
    waits = erlang_c(agents, load)
    return 1.0 - waits * math.exp(-(agents - load) * answer_time / handle_time)


def average_speed_of_answer(agents: int, load: float, handle_time: float) -> float:
    """ASA = P_w · AHT / (N - A): the mean wait of all arrivals; inf when N <= A."""
    _check_load(agents, load)
    if load == 0:
        return 0.0
    if agents <= load:
        return math.inf
    return erlang_c(agents, load) * handle_time / (agents - load)


def mean_queue_length(agents: int, load: float) -> float:
    """Lq = P_w · A / (N - A): how many wait on average; inf when N <= A."""
    _check_load(agents, load)
    if load == 0:
        return 0.0
    if agents <= load:
        return math.inf
    return erlang_c(agents, load) * load / (agents - load)


def occupancy(agents: int, load: float) -> float:
    """A / N: the share of the agents' time spent handling work (1.0 when N <= A)."""
    _check_load(agents, load)
    if agents == 0:
        return 0.0 if load == 0 else 1.0
    return min(load / agents, 1.0)


def required_agents(
    load: float,
    handle_time: float,
    answer_time: float,
    target: float,
    *,
    max_occupancy: float | None = None,
) -> int:
    """The smallest N > A whose service level reaches `target` (0 < target < 1) and,
    when given, whose occupancy A / N is at most `max_occupancy`. No load: 0.

    Both conditions only get easier as N grows, so the search starts at the larger of
    the first integer above A and ceil(A / max_occupancy) and walks N upward, carrying
    the Erlang B recursion along: O(N) in all, and never beyond MAX_AGENTS.
    """
    if not 0 < target < 1:
        # Every finite N leaves some arrivals waiting longer than T: 100 % is unreachable.
        raise ValueError(f"the service level target must be between 0 and 1 (got {target})")
    if max_occupancy is not None and not 0 < max_occupancy <= 1:
        raise ValueError(f"the occupancy cap must be in (0, 1] (got {max_occupancy})")
    if handle_time <= 0:
        raise ValueError(f"the handle time must be above 0 (got {handle_time})")
    if answer_time < 0:
        raise ValueError(f"the answer time must not be negative (got {answer_time})")
    _check_load(0, load)
    if load == 0:
        return 0
    if load > MAX_LOAD:
        raise ValueError(f"a load above {MAX_LOAD:g} Erlangs is out of range (got {load:g})")
    agents = math.floor(load) + 1
    if max_occupancy is not None:
        # The epsilon keeps 8.5 / 0.85 = 10.000000000000002 at 10 rather than 11.
        agents = max(agents, math.ceil(load / max_occupancy - 1e-9))
    blocking = erlang_b(min(agents, MAX_AGENTS + 1), load)
    while agents <= MAX_AGENTS:
        waits = _c_from_b(agents, load, blocking)
        level = 1.0 - waits * math.exp(-(agents - load) * answer_time / handle_time)
        if level >= target:
            return agents
        agents += 1
        blocking = load * blocking / (agents + load * blocking)
    raise ValueError(f"more than {MAX_AGENTS:,} agents would be needed")


def scheduled_heads(agents: int, shrinkage: float) -> int:
    """People to schedule so that `agents` are at work after shrinkage (breaks,
    meetings, absence): ceil(N / (1 - shrinkage)), 0 <= shrinkage < 1."""
    if not 0 <= shrinkage < 1:
        raise ValueError(f"shrinkage must be in [0, 1) (got {shrinkage})")
    # The epsilon keeps 8 / 0.8 = 10.000000000000002 at 10 rather than 11.
    return math.ceil(agents / (1.0 - shrinkage) - 1e-9)


def littles_law(throughput: float, time_in_system: float) -> float:
    """L = λ · W: the mean number in the system, from the rate through it and the mean
    time spent in it (in matching units)."""
    if throughput < 0 or time_in_system < 0:
        raise ValueError("throughput and time in system must not be negative")
    return throughput * time_in_system


@dataclass(frozen=True)
class Staffing:
    """What N agents achieve against a load: the figures a planner reads."""

    agents: int
    heads: int
    load: float
    waits: float  # P_w
    service_level: float
    average_speed_of_answer: float  # in the unit of the handle time
    occupancy: float


def staffing_at(
    agents: int,
    load: float,
    handle_time: float,
    answer_time: float,
    *,
    shrinkage: float = 0.0,
) -> Staffing:
    """The service figures of N agents offered A Erlangs."""
    return Staffing(
        agents=agents,
        heads=scheduled_heads(agents, shrinkage),
        load=load,
        waits=erlang_c(agents, load),
        service_level=service_level(agents, load, handle_time, answer_time),
        average_speed_of_answer=average_speed_of_answer(agents, load, handle_time),
        occupancy=occupancy(agents, load),
    )
