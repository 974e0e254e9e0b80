"""Others on the wire: a second source of joint states, or a second commander of the arm.

Two nodes publishing joint states make the node follow whichever spoke last; a second node
commanding the arm's trajectory controller interleaves its commands with the policy's. Neither
shows in the messages themselves, only in the ROS graph, so the node asks the graph (publisher
info by topic, no DDS traffic) at a low rate from the executor thread, never the control thread.

Publishers are counted per node: one node holding two publishers on a topic is one source.
"""

from __future__ import annotations

from typing import Any


def _nodes(node: Any, topic: str) -> list[str]:
    seen: list[str] = []
    for info in node.get_publishers_info_by_topic(topic):
        ns = info.node_namespace.rstrip('/')
        # The endpoint can be discovered before the node that owns it (rmw's placeholder names).
        name = (f'{ns}/{info.node_name}' if not info.node_name.startswith('_NODE_NAME_UNKNOWN')
                else '(a node whose name is not discovered yet)')
        if name not in seen:
            seen.append(name)
    return seen


class OtherPublishers:
    """Which nodes besides the expected ones publish on the input and command topics."""

    def __init__(self, node: Any, joint_topic: str, command_topic: str) -> None:
        self._node = node
        self.joint_topic = joint_topic
        self.command_topic = command_topic
        ns = node.get_namespace().rstrip('/')
        self.me = f'{ns}/{node.get_name()}'
        self._source: str | None = None  # the joint-state source the node started with

    def start(self) -> str:
        """Remember the joint-state source (at activation); the reason to refuse, or ''."""
        self._source = None
        reason = self.check()
        sources = _nodes(self._node, self.joint_topic)
        self._source = sources[0] if len(sources) == 1 else None
        return reason

    def check(self) -> str:
        """Why another publisher is a fault now, or ''."""
        reasons = []
        sources = _nodes(self._node, self.joint_topic)
        if len(sources) > 1:
            others = [s for s in sources if s != self._source] if self._source in sources else sources[1:]
            reasons.append(f'another publisher on {self.joint_topic}: node {", ".join(others)} '
                           f'(besides {self._source or sources[0]}); joint states from two sources')
        commanders = [s for s in _nodes(self._node, self.command_topic) if s != self.me]
        if commanders:
            reasons.append(f'another publisher on {self.command_topic}: node {", ".join(commanders)}; '
                           'the arm would get two command streams')
        return '; '.join(reasons)
