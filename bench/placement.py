"""Benchmark: topology-aware placement of a 512-node gang in a 10,000-node fleet.

Pure placement (scheduling/placement.py) on synthetic IB fabrics with 32 nodes per leaf, for
free pools of different fragmentation; prints time (median and max of --repeat runs; target
under 100 ms) and quality: leaf switches used, against the fewest the free pool allows and
against ceil(gang / 32), with a naive first-N-by-name pick beside it. With --db it also times
the whole `create_cluster` (candidate query, ports -> leaves, placement, UPDATE, events) on
SQLite with the same fleet.

    .venv/bin/python bench/placement.py --nodes 10000 --gang 512 --db
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

from metalfleet.scheduling.placement import Candidate, group_by_leaf, min_leaves, place

PER_LEAF = 32
LEAVES_PER_RACK = 1


def fleet(nodes: int) -> list[Candidate]:
    return [Candidate(f"n{i:05d}", f"rack-{i // PER_LEAF // LEAVES_PER_RACK:03d}",
                      f"leaf-{i // PER_LEAF:03d}") for i in range(nodes)]


def free_pool(all_nodes: list[Candidate], kind: str, rng: random.Random) -> list[Candidate]:
    """Which nodes are free. ``fragmented``: 30 % of leaves whole, the rest partly taken;
    ``shattered``: no leaf has more than 20 free; ``empty``: every node free."""
    groups = group_by_leaf(all_nodes)
    free: list[Candidate] = []
    for key in sorted(groups):
        members = groups[key]
        if kind == "empty":
            keep = len(members)
        elif kind == "fragmented":
            keep = len(members) if rng.random() < 0.3 else rng.randint(0, len(members) - 1)
        else:
            keep = rng.randint(0, min(20, len(members)))
        free += rng.sample(members, keep)
    rng.shuffle(free)
    return free


def run_pure(nodes: int, gang: int, repeat: int, seed: int) -> None:
    print(f"pure placement: {nodes} nodes, {PER_LEAF} per leaf, gang of {gang}, "
          f"{repeat} runs each")
    header = (f"{'free pool':<11} {'free':>6} {'leaves w/ free':>14} {'median ms':>9} "
              f"{'max ms':>7} {'leaves used':>11} {'fewest possible':>15} "
              f"{'ceil(gang/32)':>13} {'naive leaves':>12} {'partly used after':>17}")
    print(header)
    for kind in ("empty", "fragmented", "shattered"):
        rng = random.Random(seed)
        pool = free_pool(fleet(nodes), kind, rng)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            placement = place(pool, gang)
            times.append((time.perf_counter() - start) * 1000)
        groups = group_by_leaf(pool)
        fewest = min_leaves((len(v) for v in groups.values()), gang)
        naive = {c.leaf for c in sorted(pool, key=lambda c: c.name)[:gang]}
        # Leaves this gang leaves partly used (it took some but not all of their free nodes).
        taken = {k: sum(1 for c in placement.nodes if c.leaf_key == k) for k in placement.leaves}
        partial = sum(1 for k, n in taken.items() if n < len(groups[k]))
        print(f"{kind:<11} {len(pool):>6} {len(groups):>14} {statistics.median(times):>9.2f} "
              f"{max(times):>7.2f} {len(placement.leaves):>11} {fewest!s:>15} "
              f"{math.ceil(gang / PER_LEAF):>13} {len(naive):>12} {partial:>17}")


def run_db(nodes: int, gang: int, seed: int) -> None:
    from sqlalchemy import insert

    from metalfleet.config import Settings
    from metalfleet.db import models as m
    from metalfleet.db.base import new_uuid, utcnow
    from metalfleet.scheduling import allocation
    from metalfleet.scheduling import schemas as cs
    from metalfleet.server import bootstrap

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=f"sqlite:///{tmp}/bench.db")
        context = bootstrap(settings)
        rng = random.Random(seed)
        pool = {c.name for c in free_pool(fleet(nodes), "fragmented", rng)}
        now = utcnow()
        with context.db.session() as session:
            site = m.Site(name="s")
            klass = m.NodeClass(name="gpu")
            session.add_all([site, klass])
            session.flush()
            leaves = {}
            for leaf_index in range(math.ceil(nodes / PER_LEAF)):
                rack = m.Rack(name=f"rack-{leaf_index:03d}", site_id=site.id)
                switch = m.Switch(name=f"leaf-{leaf_index:03d}", role="leaf",
                                  fabric="infiniband", rack=rack)
                session.add_all([rack, switch])
                leaves[leaf_index] = switch
            session.flush()
            node_rows, port_rows = [], []
            for c in fleet(nodes):
                node_id = new_uuid()
                i = int(c.name[1:])
                node_rows.append({
                    "id": node_id, "name": c.name, "created_at": now, "updated_at": now,
                    "state_changed_at": now, "rack_id": leaves[i // PER_LEAF].rack_id,
                    "node_class_id": klass.id, "bmc_driver": "fake",
                    "bmc_address": f"fake://{c.name}", "hardware_type": "fake",
                    "driver_info": {}, "labels": {}, "inventory": {},
                    "state": "available" if c.name in pool else "active",
                    "power_state": "off", "health": "ok", "maintenance": False,
                    "retired": False, "bmc_verify_tls": True,
                })
                port_rows.append({
                    "id": new_uuid(), "node_id": node_id, "name": "ib0",
                    "mac": f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                    "switch_id": leaves[i // PER_LEAF].id, "pxe": False,
                    "created_at": now, "updated_at": now,
                })
            session.execute(insert(m.Node), node_rows)
            session.execute(insert(m.Port), port_rows)
        body = cs.ClusterIn(name="bench", node_class="gpu", count=gang)
        start = time.perf_counter()
        with context.db.session() as session:
            cluster = allocation.create_cluster(session, body, actor="bench")
            used = len({mb.leaf for mb in cluster.members})
        elapsed = (time.perf_counter() - start) * 1000
        context.db.dispose()
    print(f"\ncreate_cluster on SQLite ({nodes} nodes, fragmented pool of {len(pool)} free): "
          f"{elapsed:.0f} ms for {gang} nodes on {used} leaves (one transaction, "
          f"{gang + 1} events)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--gang", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", action="store_true", help="also time create_cluster on SQLite")
    args = parser.parse_args()
    run_pure(args.nodes, args.gang, args.repeat, args.seed)
    if args.db:
        run_db(args.nodes, args.gang, args.seed)


if __name__ == "__main__":
    main()
