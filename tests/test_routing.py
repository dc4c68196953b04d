"""Routing core: agent state machine, blending, universal queue and router."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from routing.agent import NO_ANSWER, Agent, AgentState, IllegalTransition, Transition
from routing.blending import BlendingRules
from routing.model import (
    Channel,
    Direction,
    ExpertiseRule,
    Interaction,
    OverflowStep,
    QueueConfig,
    RoutingError,
)
from routing.router import Router, transfer_queue

V, C, E, S = Channel.VOICE, Channel.CHAT, Channel.EMAIL, Channel.SMS
BLENDED = {V: 1, C: 4, E: 2, S: 3}


# -- agent state machine ------------------------------------------------------------------
def test_a_call_goes_reserved_busy_wrap_up_ready_with_every_step_timestamped():
    a = Agent("a1", capacity={V: 1})
    a.login(0, ["sales"])
    a.reserve(10, "call-1", V)
    a.accept(12, "call-1")
    a.finish(100, "call-1", wrap_up=30)
    assert a.state is AgentState.WRAP_UP
    a.extend_wrap_up(110, "call-1", 20)
    assert a.expire_wrap_ups(140) == []
    assert a.expire_wrap_ups(150) == ["call-1"]
    assert [(t.at, t.state) for t in a.history] == [
        (0, AgentState.LOGGED_OUT),
        (0, AgentState.READY),
        (10, AgentState.RESERVED),
        (12, AgentState.BUSY),
        (100, AgentState.WRAP_UP),
        (150, AgentState.READY),
    ]
    spent = a.time_in_state(0, 200)
    assert (
        spent[AgentState.BUSY] == 88
        and spent[AgentState.WRAP_UP] == 50
        and spent[AgentState.READY] == 10 + 50
    )


def test_illegal_transitions_name_the_current_state_and_the_request():
    a = Agent("a1")
    with pytest.raises(IllegalTransition, match="agent a1: cannot pause while logged_out"):
        a.pause(0, "lunch")
    a.login(0)
    a.start(1, "call-1", V)
    with pytest.raises(IllegalTransition, match="cannot log out while busy"):
        a.logout(2)
    with pytest.raises(
        IllegalTransition, match=r"cannot be reserved while busy .*no voice capacity"
    ):
        a.reserve(3, "call-2", V)


def test_pause_asked_while_busy_takes_effect_when_the_work_is_done():
    a = Agent("a1")
    a.login(0)
    a.start(1, "call-1", V)
    a.pause(5, "lunch")
    assert a.state is AgentState.BUSY and not a.available
    a.finish(60, "call-1")
    assert a.state is AgentState.PAUSED and a.history[-1].at == 60


def test_time_in_state_is_cut_at_the_day_boundaries():
    a = Agent("a1")
    a.login(86_000, ["q"])  # 400 s before midnight
    a.pause(87_000, "break")
    spent = a.time_in_state(86_400, 2 * 86_400)  # the second day only
    assert spent[AgentState.READY] == 600 and spent[AgentState.PAUSED] == 86_400 - 600


OPS = [
    "login",
    "logout",
    "pause",
    "ready",
    "reserve",
    "accept",
    "decline",
    "timeout",
    "finish",
    "end_wrap",
    "tick",
]


class AgentMachine(RuleBasedStateMachine):
    """Random operations: legal ones change the agent as the table says;
    illegal ones raise IllegalTransition and change nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.agent = Agent("p", capacity={V: 1, C: 2})
        self.now = 0.0
        self.n = 0

    def _try(self, op) -> None:
        before = (
            self.agent.state,
            dict(self.agent.work),
            self.agent.pause_reason,
            len(self.agent.history),
        )
        try:
            op()
        except IllegalTransition as exc:
            assert exc.current is before[0]
            after = (
                self.agent.state,
                dict(self.agent.work),
                self.agent.pause_reason,
                len(self.agent.history),
            )
            assert after == before

    @rule(dt=st.floats(0, 100))
    def wait(self, dt: float) -> None:
        self.now += dt
        if self.agent.logged_in:
            self.agent.expire_wrap_ups(self.now)

    @rule()
    def login(self) -> None:
        self._try(lambda: self.agent.login(self.now, ["q"]))

    @rule()
    def logout(self) -> None:
        self._try(lambda: self.agent.logout(self.now))

    @rule(reason=st.sampled_from(["lunch", "training"]))
    def pause(self, reason: str) -> None:
        self._try(lambda: self.agent.pause(self.now, reason))

    @rule()
    def ready(self) -> None:
        self._try(lambda: self.agent.ready(self.now))

    @rule(channel=st.sampled_from([V, C]))
    def reserve(self, channel: Channel) -> None:
        self.n += 1
        self._try(lambda: self.agent.reserve(self.now, f"i{self.n}", channel))

    def _pick(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.agent.work) or ["none"]))

    @rule(data=st.data())
    def accept(self, data: st.DataObject) -> None:
        iid = self._pick(data)
        self._try(lambda: self.agent.accept(self.now, iid))

    @rule(data=st.data(), timed_out=st.booleans())
    def decline(self, data: st.DataObject, timed_out: bool) -> None:
        iid = self._pick(data)
        self._try(lambda: self.agent.decline(self.now, iid, timed_out))
        if timed_out and iid not in self.agent.work and self.agent.logged_in:
            pass

    @rule(data=st.data(), wrap=st.sampled_from([0.0, 30.0]))
    def finish(self, data: st.DataObject, wrap: float) -> None:
        iid = self._pick(data)
        self._try(lambda: self.agent.finish(self.now, iid, wrap))

    @precondition(lambda self: self.agent.logged_in)
    @rule()
    def end_wrap_up(self) -> None:
        self._try(lambda: self.agent.end_wrap_up(self.now))

    @invariant()
    def capacity_holds_and_history_is_ordered(self) -> None:
        a = self.agent
        for channel, cap in a.capacity.items():
            assert a.load(channel) <= cap
        assert all(x.at <= y.at for x, y in zip(a.history, a.history[1:], strict=False))
        assert a.history[-1].state is a.state
        assert all(x.state is not y.state for x, y in zip(a.history, a.history[1:], strict=False))
        if not a.logged_in:
            assert not a.work


TestAgentMachine = AgentMachine.TestCase


# -- blending -----------------------------------------------------------------------------
def blended(agent_id: str = "a1", **kw) -> Agent:
    a = Agent(agent_id, capacity=dict(BLENDED), **kw)
    a.login(0, ["q"])
    return a


def test_an_agent_on_a_call_gets_no_email_or_sms_and_chats_stack_to_the_limit():
    rules = BlendingRules()
    a = blended()
    a.start(1, "call", V)
    assert not rules.may_offer(a, E, 0) and not rules.may_offer(a, S, 0)
    b = blended("b")
    for i in range(4):
        assert rules.may_offer(b, C, 0)
        b.start(1, f"chat-{i}", C)
    assert not rules.may_offer(b, C, 0), "four chats is the limit"


def test_agents_working_email_get_calls_only_when_more_than_three_wait():
    rules = BlendingRules()
    a = blended()
    a.start(1, "mail", E)
    assert not rules.may_offer(a, V, 3)
    assert rules.may_offer(a, V, 4)


def test_voice_agents_get_email_only_when_voice_is_quiet():
    rules = BlendingRules()
    a = blended()
    assert rules.may_offer(a, E, 0)
    assert not rules.may_offer(a, E, 1)
    mail_only = Agent("m", capacity={E: 2})
    mail_only.login(0, ["q"])
    assert rules.may_offer(mail_only, E, 10)


# -- router ---------------------------------------------------------------------------------
def make_router(policy: str = "longest_idle", **queue_kw) -> Router:
    queues = {"sales": QueueConfig("sales", **queue_kw), "support": QueueConfig("support")}
    return Router(queues, policy=policy, offer_timeout=15)


def call(iid: str, now: float, queue: str = "sales", **kw) -> Interaction:
    return Interaction(iid, kw.pop("channel", V), queue, now, **kw)


def test_longest_idle_agent_gets_the_call_and_ties_break_by_id():
    r = make_router()
    for aid, at in (("b", 5), ("a", 5), ("c", 1)):
        r.add_agent(Agent(aid))
        r.login(aid, at, ["sales"])
    (offer,) = r.enqueue(call("x", 10), 10)
    assert offer.agent == "c" and offer.deadline == 25
    (offer,) = r.enqueue(call("y", 11), 11)
    assert offer.agent == "a", "same idle time: the lower id"


def test_a_person_on_the_line_goes_ahead_of_an_inbound_caller_who_can_wait():
    """A blended agent frees up with an inbound caller (a queue of higher
    priority, waiting 10 s of a 20 s target) and a person the dialer reached
    (2 s before the call counts as abandoned): the person is offered first;
    the caller gets the next agent."""
    queues = {"inbound": QueueConfig("inbound", priority=1), "campaign": QueueConfig("campaign")}
    r = Router(queues)
    for aid in ("a", "b"):
        r.add_agent(Agent(aid))
        r.login(aid, 0, ["inbound", "campaign"])
        (offer,) = r.enqueue(call(f"earlier-{aid}", 1, queue="inbound"), 1)
        r.accept(aid, offer.interaction, 2)
    assert r.enqueue(call("caller", 100, queue="inbound"), 100) == []
    person = call("person", 110, queue="campaign", direction=Direction.OUTBOUND, connect_by=112)
    assert r.enqueue(person, 110) == []
    (offer,) = r.finish("a", "earlier-a", 111)
    assert (offer.agent, offer.interaction) == ("a", "person")
    (offer,) = r.finish("b", "earlier-b", 111.5)
    assert (offer.agent, offer.interaction) == ("b", "caller")


def test_skills_levels_and_best_skill_policy():
    r = make_router(policy="best_skill")
    r.add_agent(Agent("junior", skills={"de": 3}))
    r.add_agent(Agent("senior", skills={"de": 9}))
    r.add_agent(Agent("english", skills={"en": 10}))
    for aid in ("junior", "senior", "english"):
        r.login(aid, 0, ["sales"])
    (offer,) = r.enqueue(call("x", 1, skills={"de": 2}), 1)
    assert offer.agent == "senior"
    (offer,) = r.enqueue(call("y", 1, skills={"de": 2}), 1)
    assert offer.agent == "junior"
    assert r.enqueue(call("z", 1, skills={"de": 5}), 1) == [], "nobody free with German 5+"


def test_expertise_rule_sends_old_products_to_second_level():
    queues = {
        "support": QueueConfig(
            "support", expertise=(ExpertiseRule("product_age", ">", 5, team="2nd-level"),)
        )
    }
    r = Router(queues)
    r.add_agent(Agent("first", team="1st-level"))
    r.add_agent(Agent("second", team="2nd-level"))
    r.login("first", 0, ["support"])
    r.login("second", 5, ["support"])  # idle for less time
    (offer,) = r.enqueue(call("old", 10, queue="support", attributes={"product_age": 7}), 10)
    assert offer.agent == "second"
    (offer,) = r.enqueue(call("new", 10, queue="support", attributes={"product_age": 2}), 10)
    assert offer.agent == "first"


def test_overflow_widens_skills_after_a_minute_and_exits_to_voicemail_later():
    r = make_router(
        overflow=(OverflowStep(60, "widen", min_level=1), OverflowStep(300, "voicemail"))
    )
    r.add_agent(Agent("generalist", skills={"billing": 1}))
    r.login("generalist", 0, ["sales"])
    assert r.enqueue(call("x", 0, skills={"billing": 8}), 0) == []
    offers, exits = r.tick(59)
    assert offers == [] and exits == []
    offers, exits = r.tick(60)
    assert [o.interaction for o in offers] == ["x"]
    r.accept("generalist", "x", 61)
    assert r.enqueue(call("y", 100, skills={"billing": 8}), 100) == []
    _, exits = r.tick(400)
    assert [(e.interaction, e.reason) for e in exits] == [("y", "voicemail")]
    assert "y" not in r.waiting


def test_voice_overtakes_email_once_its_target_is_near_but_email_never_starves():
    def race(mail_at: float, call_at: float, now: float) -> str:
        r = make_router()
        r.add_agent(Agent("a", capacity=dict(BLENDED)))
        r.enqueue(call("mail", mail_at, channel=E), mail_at)
        r.enqueue(call("call", call_at, channel=V), call_at)
        return r.login("a", now, ["sales"])[0].interaction

    # the call has used 75 % of its 20 s target, the mail 1 % of its day
    assert race(0, 1000, 1015) == "call"
    # a mail past its 24 h target beats a fresh call, although calls wait
    assert race(0, 86_400, 86_410) == "mail"


def test_unanswered_offer_pauses_the_agent_and_requeues_at_the_original_place():
    r = make_router()
    for aid in ("a", "b"):
        r.add_agent(Agent(aid))
    r.login("a", 0, ["sales"])
    (first,) = r.enqueue(call("first", 1), 1)
    r.enqueue(call("second", 2), 2)
    assert first.agent == "a"
    offers, _ = r.tick(16)  # a did not answer within 15 s
    agent_a = r.agents["a"]
    assert agent_a.state is AgentState.PAUSED and agent_a.pause_reason == NO_ANSWER
    assert offers == []
    offers = r.login("b", 17, ["sales"])
    assert [o.interaction for o in offers] == ["first"], (
        "back at its original position, ahead of 'second'"
    )
    assert sorted(r.waiting) == ["second"] and len(r.offered) == 1, "never lost, never duplicated"


def test_rejected_offer_goes_to_the_next_agent_and_abandon_removes_the_caller():
    r = make_router()
    for aid, t in (("a", 0), ("b", 1)):
        r.add_agent(Agent(aid))
        r.login(aid, t, ["sales"])
    (offer,) = r.enqueue(call("x", 5), 5)
    assert offer.agent == "a"
    offers = r.decline("a", "x", 6)
    assert [o.agent for o in offers] == ["b"]
    assert r.abandon("x", 7).id == "x"
    assert not r.waiting and not r.offered and r.agents["b"].state is AgentState.READY


def test_finishing_with_wrap_up_blocks_the_next_call_until_wrap_up_ends():
    r = make_router()
    r.add_agent(Agent("a"))
    r.login("a", 0, ["sales"])
    r.enqueue(call("x", 1), 1)
    r.accept("a", "x", 2)
    r.enqueue(call("y", 3), 3)
    assert r.finish("a", "x", 60, wrap_up=20) == []
    offers, _ = r.tick(80)
    assert [o.interaction for o in offers] == ["y"]


def test_unknown_things_are_refused_with_the_field_named():
    r = make_router()
    with pytest.raises(RoutingError, match="queue: unknown queue 'nope'"):
        r.enqueue(call("x", 0, queue="nope"), 0)
    with pytest.raises(RoutingError, match="policy: unknown policy"):
        Router({}, policy="random")
    with pytest.raises(RoutingError, match="agent: unknown agent"):
        r.pause("ghost", 0, "x")
    r.add_agent(Agent("a"))
    with pytest.raises(RoutingError, match="queues: unknown queue"):
        r.login("a", 0, ["nope"])


# -- the indexes never change a decision ------------------------------------------------------
def naive_agent(r: Router, it: Interaction, now: float) -> str | None:
    waiting = r.calls_waiting()
    overdue = r._sla_used(it, now) >= 1.0
    ok = [
        a
        for a in r.agents.values()
        if r.eligible(a, it) and r.rules.may_offer(a, it.channel, waiting, overdue)
    ]
    return min(ok, key=lambda a: r._policy_key(a, it)).id if ok else None


def naive_interaction(r: Router, agent: Agent, now: float) -> str | None:
    waiting = r.calls_waiting()
    ok = [
        it
        for it in r.waiting.values()
        if r.eligible(agent, it)
        and r.rules.may_offer(agent, it.channel, waiting, r._sla_used(it, now) >= 1.0)
    ]
    return max(ok, key=lambda it: (r._urgency(it, now), -it.seq)).id if ok else None


@given(
    st.integers(0, 10_000),
    st.sampled_from(["longest_idle", "best_skill", "least_occupied"]),
    st.integers(3, 25),
    st.integers(0, 30),
)
def test_indexed_decisions_equal_a_naive_scan(seed, policy, n_agents, n_waiting):
    import random

    rng = random.Random(seed)
    skills = ["a", "b", "c", "d"]
    r = Router({"q1": QueueConfig("q1"), "q2": QueueConfig("q2", priority=1)}, policy=policy)
    for i in range(n_agents):
        agent = Agent(
            f"ag{i}",
            skills={s: rng.randint(1, 10) for s in rng.sample(skills, rng.randint(0, 3))},
            capacity={V: 1, C: rng.randint(0, 3), E: rng.randint(0, 2)},
        )
        r.add_agent(agent)
        agent.login(rng.uniform(0, 50), rng.sample(["q1", "q2"], rng.randint(1, 2)))
        if rng.random() < 0.4:
            agent.start(60, f"busy{i}", rng.choice([V, C]) if agent.capacity[C] else V)
        if rng.random() < 0.1:
            agent.pause(61, "break")
        r._reindex(agent)
    for i in range(n_waiting):
        it = Interaction(
            f"w{i}",
            rng.choice([V, C, E]),
            rng.choice(["q1", "q2"]),
            rng.uniform(0, 100),
            priority=rng.choice([0, 1]),
            skills={s: rng.randint(1, 6) for s in rng.sample(skills, rng.randint(0, 2))},
        )
        r._seq += 1
        it.seq = r._seq
        r._push(it)
    now = 120.0
    for it in list(r.waiting.values()):
        fast = r.best_agent(it, now=now)
        assert (fast.id if fast else None) == naive_agent(r, it, now)
    for agent in r.agents.values():
        fast = r.best_interaction(agent, now)
        assert (fast.id if fast else None) == naive_interaction(r, agent, now)


def test_the_end_of_the_transferring_agents_wrap_up_leaves_the_call_to_its_new_agent():
    """a transfers a call and wraps up; b takes it; a's wrap-up ending (by its
    timer or by a) must not take the call from b, who still finishes it."""
    for end_by_agent in (False, True):
        r = make_router()
        for aid in ("a", "b"):
            r.add_agent(Agent(aid))
        r.login("a", 0, ["sales"])
        assert len(r.enqueue(call("x", 1), 1)) == 1
        r.accept("a", "x", 2)
        r.login("b", 3, ["support"])
        (offer,) = r.transfer("a", "x", 10, to_agent="b", wrap_up=5)
        assert offer.agent == "b"
        r.accept("b", "x", 11)
        if end_by_agent:
            r.end_wrap_up("a", 12)
        else:
            r.tick(16)
        assert r.handling["x"] == "b"
        r.finish("b", "x", 20)
        assert r.agents["b"].state is AgentState.READY and "x" not in r.handling


def _person(iid: str, queue: str, now: float) -> Interaction:
    """A person the dialer reached: lost unless connected within 2 s."""
    return call(iid, now, queue=queue, direction=Direction.OUTBOUND, connect_by=now + 2.0)


def test_a_person_goes_ahead_of_an_earlier_caller_in_the_same_queue():
    r = Router({"sales": QueueConfig("sales")})
    r.add_agent(Agent("a"))
    r.login("a", 0.0, ["sales"], paused="break")
    r.enqueue(call("in-1", 0.0), 0.0)
    r.enqueue(_person("p-1", "sales", 10.0), 10.0)
    assert [o.interaction for o in r.ready("a", 10.5)] == ["p-1"]


def test_a_person_behind_a_call_that_can_wait_in_its_queue_still_goes_first():
    """The campaign's queue holds an outbound call that can wait (one handed
    back there, no 2 s any more) ahead of the new person; an inbound caller
    waits in another queue: the new person is offered, not the caller."""
    r = Router({"c": QueueConfig("c"), "in": QueueConfig("in")})
    r.add_agent(Agent("a"))
    r.login("a", 0.0, ["c", "in"], paused="break")
    r.enqueue(call("p-0", 5.0, queue="c", direction=Direction.OUTBOUND), 5.0)
    r.enqueue(call("in-1", 0.0, queue="in"), 0.0)
    r.enqueue(_person("p-1", "c", 10.0), 10.0)
    assert [o.interaction for o in r.ready("a", 10.5)] == ["p-1"]


def test_a_transfer_to_an_agent_waits_in_the_calls_queue_or_the_agents_first_configured_one():
    """F19: the call keeps its own queue when the target agent serves it,
    else it waits in the target agent's FIRST configured queue (the order it
    logged in with), not the alphabetically first: the report row (the
    history's "queued" entry) and the interaction's queue say that queue."""
    queues = {n: QueueConfig(n) for n in ("sales", "support", "billing")}
    for target_queues, expected in (
        (["support", "billing"], "support"),  # not hers: her first, not "billing"
        (["support", "sales"], "sales"),  # hers too: the call's own
    ):
        r = Router(queues, offer_timeout=15)
        for aid in ("a", "b"):
            r.add_agent(Agent(aid))
        r.login("a", 0, ["sales"])
        r.enqueue(call("x", 1), 1)
        r.accept("a", "x", 2)
        r.login("b", 3, target_queues, paused="break")
        r.transfer("a", "x", 10, to_agent="b")
        it = r.waiting["x"]
        assert it.queue == expected
        assert it.history[-1].event == "queued" and it.history[-1].queue == expected
    assert transfer_queue("sales", r.agents["b"]) == "sales"
    assert transfer_queue("billing", r.agents["b"]) == "support"
    assert transfer_queue("sales", Agent("nobody")) is None


def test_the_routers_queries_and_listeners_say_who_has_what() -> None:
    """What the hub, the adapters and the pacing lab read instead of the router's
    dictionaries: the agents in configuration order, the interaction on offer
    and its agent, and the changes as they happen."""
    router = Router({"q": QueueConfig("q")})
    for agent_id in ("b", "a"):
        router.add_agent(Agent(agent_id))
    changed: list[tuple[str, AgentState]] = []
    ended: list[tuple[str, str, str]] = []
    router.listen_agents(lambda a: changed.append((a.id, a.state)))
    router.listen_offers(lambda agent, it, end, now: ended.append((agent, it.id, end.value)))
    assert [a.id for a in router.configured_agents()] == ["b", "a"]
    assert [a.id for a in router.all_agents()] == ["a", "b"]
    router.login("a", 0.0, ["q"])
    router.enqueue(Interaction("i1", V, "q", 1.0), 1.0)
    offered = router.in_offer("i1")
    assert offered is not None and offered.id == "i1" and router.offered_to("i1") == "a"
    assert router.in_offer("nothing") is None
    router.accept("a", "i1", 2.0)
    assert router.in_offer("i1") is None and router.handled_by("i1") == "a"
    assert ended == [("a", "i1", "accepted")]
    assert changed == [("a", AgentState.READY), ("a", AgentState.RESERVED), ("a", AgentState.BUSY)]


def test_the_day_before_a_restart_goes_ahead_of_this_runs_states() -> None:
    agent = Agent("a")
    agent.restore_day([], 500.0)
    assert agent.time_in_state(0.0, 500.0)[AgentState.LOGGED_OUT] == 500.0
    agent.restore_day([Transition(100.0, AgentState.READY)], 500.0)
    agent.login(600.0)
    seconds = agent.time_in_state(0.0, 700.0)
    assert seconds[AgentState.READY] == 400.0 + 100.0
    assert seconds[AgentState.LOGGED_OUT] == 100.0 + 100.0
