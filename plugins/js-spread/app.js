// spread-zones, written in JavaScript: a placement policy built with
// componentize-js against the same WIT as the Rust policies. It mirrors
// plugins/python-spread/app.py choice for choice and error for error.
//
// For each vacancy group, one node at a time: a node in a zone the team does
// not use yet if there is one, then the least loaded; ties go to the lowest
// node id. Down, full, excluded and incapable nodes are skipped. Picks made
// earlier in the request count as load.
//
// How the WIT reaches JavaScript: records are plain objects with camelCase
// fields (`min-distinct-zones` is `minDistinctZones`), enums are their
// kebab-case strings (`'storage'`, `'commit-proxy'`), u32 is a number, u64 a
// BigInt (`lastSeenMs`, unused here) and `option<shard-tag>` a number or
// undefined.

// Compares node ids by Unicode code point, as Python and Rust do. JavaScript's
// `<` compares UTF-16 code units, which would put an astral character (a
// surrogate pair, U+10000 and up) before U+E000..U+FFFF: the one place where
// the two orders differ, fixed up here.
function compareIds(a, b) {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      const xs = (x & 0xf800) === 0xd800;
      const ys = (y & 0xf800) === 0xd800;
      if (xs !== ys) return xs ? 1 : -1;
      return x < y ? -1 : 1;
    }
  }
  return a.length - b.length;
}

// Refuses the request: componentize-js lowers a thrown value into the `err`
// case of the exported `result`. An Error carrying an own `payload` is
// unwrapped to that payload, the placement-error record; any other Error
// would trap instead.
function refuse(vacancy, constraint, message) {
  const error = new Error(`${constraint}: ${message}`);
  error.payload = { vacancy, constraint, message };
  throw error;
}

// The parts of Python's `eligible` that stay fixed while a group is placed:
// health, capabilities and exclusion. Load and `taken` change with each pick
// and are checked in the pick loop.
function fits(node, group, exclude) {
  return (
    node.healthy &&
    node.capabilities.includes(group.kind) &&
    group.constraints.requiredCapabilities.every((k) => node.capabilities.includes(k)) &&
    !exclude.has(node.id)
  );
}

function place(request) {
  const nodes = request.nodes;
  // Python keys load and zone by node id, the last node of a repeated id
  // winning, so nodes that share an id share their load. Here each id gets a
  // slot (its last node's position) and each zone a number, so the pick loop
  // reads arrays instead of hashing strings or reading the request's objects:
  // that loop is the whole cost, |nodes| steps per vacancy, as in Python.
  const slotOf = new Map(nodes.map((n, i) => [n.id, i]));
  const zoneNumber = new Map();
  for (const n of nodes) if (!zoneNumber.has(n.zone)) zoneNumber.set(n.zone, zoneNumber.size);
  const slot = nodes.map((n) => slotOf.get(n.id));
  const zoneOf = nodes.map((n) => zoneNumber.get(n.zone));
  const load = new Array(nodes.length).fill(0);
  const capacity = nodes.map((n) => n.capacity);
  const ids = nodes.map((n) => n.id);
  for (let i = 0; i < nodes.length; i++) load[slot[i]] = nodes[i].load;
  const answer = [];
  request.vacancies.forEach((group, index) => {
    const members = [];
    if (group.team !== undefined && group.team !== null) {
      for (const team of request.teams) {
        if (team.team === group.team && team.kind === group.kind) {
          for (const m of team.nodes) members.push(m);
        }
      }
    }
    // `taken` and the used zones start from the team's current members; a
    // member that is not a node of the request is never a candidate and has
    // no zone, so only members that are nodes need marking.
    const taken = new Uint8Array(nodes.length);
    const used = new Uint8Array(zoneNumber.size);
    let zoneCount = 0;
    for (const m of members) {
      const s = slotOf.get(m);
      if (s === undefined) continue;
      taken[s] = 1;
      const z = zoneOf[s];
      if (!used[z]) {
        used[z] = 1;
        zoneCount++;
      }
    }
    const exclude = new Set(group.constraints.excludeNodes);
    const distinct = group.constraints.distinctNodes;
    // Filtered once per group, in request order, which the tie-break needs.
    const fitting = [];
    for (let i = 0; i < nodes.length; i++) if (fits(nodes[i], group, exclude)) fitting.push(i);
    const chosen = [];
    for (let pick = 0; pick < group.count; pick++) {
      // One pass for Python's `min` over the candidates by the key
      // (zone already used, load, id): unused (0) sorts before used (1), as
      // False before True, and on a full tie (a repeated id) the earlier node
      // in request order stays, as `min` keeps the first.
      let best = -1;
      let bestUsed = 0;
      let bestLoad = 0;
      for (let k = 0; k < fitting.length; k++) {
        const i = fitting[k];
        const s = slot[i];
        const l = load[s];
        if (l >= capacity[i] || (distinct && taken[s] === 1)) continue;
        const u = used[zoneOf[i]];
        if (best < 0 || u < bestUsed || (u === bestUsed && (l < bestLoad || (l === bestLoad && compareIds(ids[i], ids[best]) < 0)))) {
          best = i;
          bestUsed = u;
          bestLoad = l;
        }
      }
      if (best < 0) {
        refuse(index, 'capacity', `only ${chosen.length} of ${group.count} vacancies fit on healthy, capable nodes with room`);
      }
      const s = slot[best];
      load[s] += 1;
      taken[s] = 1;
      if (!used[zoneOf[best]]) {
        used[zoneOf[best]] = 1;
        zoneCount++;
      }
      chosen.push(nodes[best].id);
    }
    if (zoneCount < group.constraints.minDistinctZones) {
      refuse(
        index,
        'min-distinct-zones',
        `needs ${group.constraints.minDistinctZones} distinct zones, only ${zoneCount} reachable`,
      );
    }
    answer.push({ vacancy: index, nodes: chosen });
  });
  return answer;
}

// The world exports the interface `placement`; componentize-js looks it up
// as this camelCase export, an object holding the interface's functions.
export const placement = { place };
