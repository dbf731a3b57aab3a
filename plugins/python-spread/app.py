"""spread-zones, written in Python: a placement policy built with
componentize-py against the same WIT as the Rust policies.

For each vacancy group, one node at a time: a node in a zone the team does
not use yet if there is one, then the least loaded; ties go to the lowest
node id. Down, full, excluded and incapable nodes are skipped. Picks made
earlier in the request count as load.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types


def eligible(node, load, group):
    c = group.constraints
    return (
        node.healthy
        and load < node.capacity
        and group.kind in node.capabilities
        and all(k in node.capabilities for k in c.required_capabilities)
        and node.id not in c.exclude_nodes
    )


class Placement(exports.Placement):
    def place(self, request):
        load = {n.id: n.load for n in request.nodes}
        zone = {n.id: n.zone for n in request.nodes}
        answer = []
        for index, group in enumerate(request.vacancies):
            members = [
                node
                for team in request.teams
                if group.team is not None and team.team == group.team and team.kind == group.kind
                for node in team.nodes
            ]
            taken = set(members)
            zones = {zone[m] for m in members if m in zone}
            chosen = []
            for _ in range(group.count):
                candidates = [
                    n
                    for n in request.nodes
                    if eligible(n, load[n.id], group)
                    and not (group.constraints.distinct_nodes and n.id in taken)
                ]
                if not candidates:
                    raise Err(types.PlacementError(
                        vacancy=index,
                        constraint="capacity",
                        message=f"only {len(chosen)} of {group.count} vacancies fit on healthy, capable nodes with room",
                    ))
                best = min(candidates, key=lambda n: (n.zone in zones, load[n.id], n.id))
                load[best.id] += 1
                taken.add(best.id)
                zones.add(best.zone)
                chosen.append(best.id)
            if len(zones) < group.constraints.min_distinct_zones:
                raise Err(types.PlacementError(
                    vacancy=index,
                    constraint="min-distinct-zones",
                    message=f"needs {group.constraints.min_distinct_zones} distinct zones, only {len(zones)} reachable",
                ))
            answer.append(types.Assignment(vacancy=index, nodes=chosen))
        return answer
