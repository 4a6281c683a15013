"""Generate a deterministic sqlops project of any size, to benchmark sqlops on.

The project has three raw sources read from CSV files (`raw.customers`, `raw.orders`,
`raw.payments`, each of `rows` rows), about 10% staging models that clean them, and the rest in
layers of models that each join 1-3 upstream models, with CTEs, aggregations, window functions,
CASE expressions, explicit column lists (so column lineage is followed) and some `SELECT *`
passthroughs. About half of the models carry 1-3 assertions, all of which hold on the generated
data, so `sqlops build` of the project succeeds.

Every relation has a grain whose key it keeps unique: a customer (`customer_id`), an order
(`order_id`, with `customer_id` and `order_date`), a payment (`payment_id`, with `order_id`) or a
day (`order_date`). Every metric is a non-negative number. Those two rules are what make the joins
fan-out free and the assertions true.

The same `models`, `rows` and `seed` always give the same files, byte for byte.

    python -m benchmarks.generate OUT --models 2000 --rows 1000 [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GRAIN_COLUMNS: dict[str, tuple[str, ...]] = {
    "customer": ("customer_id",),
    "order": ("order_id", "customer_id", "order_date"),
    "payment": ("payment_id", "order_id"),
    "day": ("order_date",),
}
UNIQUE_KEY = {
    "customer": "customer_id",
    "order": "order_id",
    "payment": "payment_id",
    "day": "order_date",
}
TIERS = ("low", "mid", "high")
OWNERS = ("sales-data@example.com", "finance-data@example.com", "growth-data@example.com")
STAGING_SHARE = 0.1
BASELINE = "baseline.json"  # what the raw DuckDB baseline runs, in dependency order
EDIT_ALIAS = "bench_edit"


@dataclass(frozen=True)
class Column:
    """An output column, as the generator needs to know it to write SQL that reads it."""

    name: str
    kind: str  # "key", "date", "category" or "metric" (always >= 0 or NULL)
    root: str = ""  # for a metric: the quantity it measures, which names what is derived from it
    values: tuple[str, ...] = ()  # for a category: every value it can take


@dataclass
class Relation:
    """A source or model of the generated project."""

    id: str
    grain: str
    layer: int  # 0 for raw sources, 1 for staging models, 2... for the layers above them
    columns: tuple[Column, ...]
    template: str
    path: str
    upstream: tuple[str, ...] = ()
    reads: list[tuple[str, str]] = field(default_factory=list)  # (upstream id, column) read
    assertions: int = 0
    # what the raw DuckDB baseline runs: `head` (up to the end of the select list) + "\n" +
    # `tail` is the model's query; `checks` are one query per assertion, `{t}` for the relation
    head: str = ""
    tail: str = ""
    kind: str = "table"  # "table", "view" or "source" (its head is the whole CREATE TABLE AS)
    checks: list[str] = field(default_factory=list)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def metrics(self) -> list[Column]:
        return [c for c in self.columns if c.kind == "metric"]

    def categories(self) -> list[Column]:
        return [c for c in self.columns if c.kind == "category"]


@dataclass(frozen=True)
class GeneratedProject:
    """What was generated, and a mid-DAG column to ask `sqlops impact` about."""

    root: Path
    models: int
    rows: int
    seed: int
    layers: int
    staging: int
    assertions: int
    models_with_assertions: int
    templates: dict[str, int]
    probe_model: str
    probe_column: str
    probe_key: str
    probe_descendants: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GeneratedProject:
        probe = data["probe"]
        return cls(
            root=Path(data["root"]),
            models=data["models"],
            rows=data["rows"],
            seed=data["seed"],
            layers=data["layers"],
            staging=data["staging"],
            assertions=data["assertions"],
            models_with_assertions=data["models_with_assertions"],
            templates=data["templates"],
            probe_model=probe["model"],
            probe_column=probe["column"],
            probe_key=probe["key"],
            probe_descendants=probe["descendants"],
        )

    def to_json(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "models": self.models,
            "rows": self.rows,
            "seed": self.seed,
            "layers": self.layers,
            "staging": self.staging,
            "assertions": self.assertions,
            "models_with_assertions": self.models_with_assertions,
            "templates": self.templates,
            "probe": {
                "model": self.probe_model,
                "column": self.probe_column,
                "key": self.probe_key,
                "descendants": self.probe_descendants,
            },
        }


@dataclass
class _Item:
    """One select-list item: its SQL and the column it makes."""

    sql: str
    column: Column

    def render(self) -> str:
        bare = self.sql.rsplit(".", 1)[-1]
        return self.sql if bare == self.column.name else f"{self.sql} AS {self.column.name}"


@dataclass
class _Model:
    """A model's SQL in parts, before it is written out."""

    grain: str
    items: list[_Item]
    from_sql: str  # FROM ... JOIN ... WHERE ... GROUP BY ...: everything after the select list
    ctes: list[tuple[str, str]] = field(default_factory=list)
    star: str | None = None  # `*`, `p.*` or `* EXCLUDE (x)` in front of the items
    star_columns: tuple[Column, ...] = ()  # the columns that star expands to


def generate(root: Path, models: int, rows: int, seed: int = 0) -> GeneratedProject:
    """Write a project of `models` models (at least 10) over sources of `rows` rows into `root`.

    `root` must not exist or be empty. The project is the same for the same arguments.
    """
    if models < 10:
        raise ValueError("models must be at least 10")
    if rows < 10:
        raise ValueError("rows must be at least 10")
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty")
    return _Generator(root, models, rows, seed).run()


class _Generator:
    def __init__(self, root: Path, models: int, rows: int, seed: int) -> None:
        self.root = root
        self.models = models
        self.rows = rows
        self.seed = seed
        self.rng = random.Random(seed)
        self.relations: dict[str, Relation] = {}
        self.by_layer: dict[int, list[Relation]] = {}
        self.files: dict[str, str] = {}
        self.below: dict[tuple[int, str], list[Relation]] = {}

    # -- the whole project ---------------------------------------------------------------------

    def run(self) -> GeneratedProject:
        staging = max(3, round(self.models * STAGING_SHARE))
        rest = self.models - staging
        layers = max(2, round(math.sqrt(rest) / 4))
        self.files["sqlops.toml"] = _TOML
        self._sources()
        for i in range(staging):
            self._add(self._staging(i, ("customers", "orders", "payments")[i % 3]))
        for j in range(rest):
            layer = 2 + j * layers // rest
            self._add(self._layered(staging + j, layer))
        probe = self._probe(2 + (layers - 1) // 2)
        for path, text in self.files.items():
            target = self.root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8", newline="\n")
        templates: dict[str, int] = {}
        for rel in self.relations.values():
            if rel.layer > 0:
                templates[rel.template] = templates.get(rel.template, 0) + 1
        modelled = [r for r in self.relations.values() if r.layer > 0]
        project = GeneratedProject(
            root=self.root,
            models=len(modelled),
            rows=self.rows,
            seed=self.seed,
            layers=layers,
            staging=staging,
            assertions=sum(r.assertions for r in modelled),
            models_with_assertions=sum(1 for r in modelled if r.assertions),
            templates=dict(sorted(templates.items())),
            probe_model=probe[0].id,
            probe_column=probe[1],
            probe_key=UNIQUE_KEY[probe[0].grain],
            probe_descendants=probe[2],
        )
        (self.root / "benchmark.json").write_text(
            json.dumps(project.to_json(), indent=2) + "\n", encoding="utf-8"
        )
        baseline = [
            {
                "id": r.id,
                "kind": r.kind,
                "head": r.head,
                "tail": r.tail,
                "upstream": list(r.upstream),
                "key": UNIQUE_KEY[r.grain],
                "checks": r.checks,
            }
            for r in self.relations.values()
        ]
        (self.root / BASELINE).write_text(json.dumps(baseline, indent=1) + "\n", encoding="utf-8")
        return project

    def _add(self, rel: Relation) -> None:
        self.relations[rel.id] = rel
        self.by_layer.setdefault(rel.layer, []).append(rel)

    def _probe(self, layer: int) -> tuple[Relation, str, int]:
        """The model of `layer` with the most descendants, and its most-read metric."""
        readers: dict[str, list[str]] = {}
        for rel in self.relations.values():
            for up in rel.upstream:
                readers.setdefault(up, []).append(rel.id)
        best: tuple[int, str] | None = None
        for rel in self.by_layer[layer]:
            seen: dict[str, None] = {}
            todo = list(readers.get(rel.id, []))
            while todo:
                node = todo.pop()
                if node not in seen:
                    seen[node] = None
                    todo.extend(readers.get(node, []))
            if best is None or len(seen) > best[0]:
                best = (len(seen), rel.id)
        assert best is not None
        rel = self.relations[best[1]]
        counts = {c.name: 0 for c in rel.metrics()}
        for reader in readers.get(rel.id, []):
            for up, name in self.relations[reader].reads:
                if up == rel.id and name in counts:
                    counts[name] += 1
        column = max(counts, key=lambda n: counts[n]) if counts else rel.columns[-1].name
        return rel, column, best[0]

    # -- raw sources and their data ------------------------------------------------------------

    def _sources(self) -> None:
        rng = random.Random(self.seed * 7919 + 1)  # the data does not shift with the model count
        n = self.rows
        start = dt.date(2023, 1, 1)
        customers = ["customer_id,region,segment,signup_date,credit_limit"]
        for i in range(1, n + 1):
            signup = start - dt.timedelta(days=rng.randrange(0, 1500))
            customers.append(
                f"{i},{rng.choice(_REGIONS)},{rng.choice(_SEGMENTS)},{signup.isoformat()},"
                f"{rng.randrange(100, 20000)}.{rng.randrange(0, 100):02d}"
            )
        orders = ["order_id,customer_id,order_date,status,channel,item_count,shipping_cost"]
        for i in range(1, n + 1):
            day = start + dt.timedelta(days=rng.randrange(0, 730))
            status = rng.choices(_STATUSES, weights=(2, 3, 12, 2, 1))[0]
            orders.append(
                f"{i},{rng.randrange(1, n + 1)},{day.isoformat()},{status},{rng.choice(_CHANNELS)},"
                f"{rng.randrange(1, 12)},{rng.randrange(0, 30)}.{rng.randrange(0, 100):02d}"
            )
        payments = ["payment_id,order_id,method,amount,paid_date"]
        for i in range(1, n + 1):
            day = start + dt.timedelta(days=rng.randrange(0, 735))
            payments.append(
                f"{i},{rng.randrange(1, n + 1)},{rng.choice(_METHODS)},"
                f"{rng.randrange(1, 500)}.{rng.randrange(0, 100):02d},{day.isoformat()}"
            )
        for name, lines in (("customers", customers), ("orders", orders), ("payments", payments)):
            self.files[f"data/{name}.csv"] = "\n".join(lines) + "\n"
        for name, (grain, columns, ddl, description) in _RAW.items():
            self.files[f"sources/raw/{name}.sql"] = _source_sql(name, ddl, description, grain)
            rel = Relation(f"raw.{name}", grain, 0, columns, "source", f"sources/raw/{name}.sql")
            rel.kind = "source"
            rel.head = _raw_load(name, ddl)
            key = UNIQUE_KEY[grain]
            rel.checks = [_RAW_CHECK["unique"](key), _RAW_CHECK["not_null"](key), _ROWS_CHECK]
            self._add(rel)

    # -- staging: one per raw source in turn ---------------------------------------------------

    def _staging(self, index: int, source: str) -> Relation:
        rng = self.rng
        n = f"{index:04d}"
        raw = self.relations[f"raw.{source}"]
        if source == "customers":
            items = [
                _Item("customer_id", raw.column("customer_id")),
                _Item("lower(region)", Column("region", "category", values=_REGIONS)),
                _Item("segment", raw.column("segment")),
                _Item("signup_date", raw.column("signup_date")),
                _Item("credit_limit", raw.column("credit_limit")),
                _Item(
                    f"CASE WHEN segment = 'enterprise' THEN credit_limit * {rng.choice((1.5, 2, 3))} "
                    "ELSE credit_limit END",
                    Column(f"credit_adjusted_{n}", "metric", "credit"),
                ),
            ]
            where = f"signup_date >= DATE '{_early_date(rng, 2018)}'"
        elif source == "orders":
            items = [
                _Item("order_id", raw.column("order_id")),
                _Item("customer_id", raw.column("customer_id")),
                _Item("order_date", raw.column("order_date")),
                _Item("lower(status)", Column("status", "category", values=_STATUSES)),
                _Item("channel", raw.column("channel")),
                _Item("item_count", raw.column("item_count")),
                _Item("shipping_cost", raw.column("shipping_cost")),
                _Item(
                    f"item_count * {rng.choice((9.5, 12.0, 14.25))} + shipping_cost",
                    Column(f"gross_amount_{n}", "metric", "gross"),
                ),
            ]
            where = "status <> 'cancelled'"
        else:
            items = [
                _Item("payment_id", raw.column("payment_id")),
                _Item("order_id", raw.column("order_id")),
                _Item("method", raw.column("method")),
                _Item("amount", raw.column("amount")),
                _Item("paid_date", raw.column("paid_date")),
                _Item(
                    "CASE WHEN method = 'voucher' THEN 0 ELSE amount END",
                    Column(f"cash_amount_{n}", "metric", "cash"),
                ),
            ]
            where = "amount > 0"
        model = _Model(raw.grain, items, f"FROM {raw.id}\nWHERE {where}")
        rel_id = f"staging.{source}_{n}"
        reads = [(raw.id, c.name) for c in raw.columns]
        return self._write(
            rel_id,
            1,
            model,
            "staging",
            (raw.id,),
            reads,
            f"{source.capitalize()} from raw.{source}, cleaned.",
            materialized="view",
        )

    # -- the layers ----------------------------------------------------------------------------

    def _layered(self, index: int, layer: int) -> Relation:
        rng = self.rng
        choices = [
            (name, weight)
            for name, (weight, needs) in _TEMPLATES.items()
            if all(self._below(layer, g) for g in needs)
        ]
        template = rng.choices([c[0] for c in choices], weights=[c[1] for c in choices])[0]
        build = getattr(self, f"_t_{template}")
        model, upstream, reads, description = build(index, layer)
        rel_id = f"layer{layer:02d}.{template}_{index:04d}"
        materialized = "view" if rng.random() < 0.1 else None
        return self._write(
            rel_id, layer, model, template, upstream, reads, description, materialized
        )

    def _below(self, layer: int, grain: str) -> list[Relation]:
        """The models of `grain` in the layers below `layer` (all written by now)."""
        key = (layer, grain)
        if key not in self.below:
            self.below[key] = [
                r for r in self.relations.values() if 0 < r.layer < layer and r.grain == grain
            ]
        return self.below[key]

    def _primary(self, layer: int, grain: str) -> Relation:
        """A relation of `grain` from the layer just below, else from the nearest one."""
        for below in range(layer - 1, 0, -1):
            found = [r for r in self.by_layer.get(below, []) if r.grain == grain]
            if found:
                return self.rng.choice(found)
        raise AssertionError(f"no {grain} relation below layer {layer}")

    def _others(
        self, layer: int, grain: str, count: int, skip: Sequence[Relation]
    ) -> list[Relation]:
        """Up to `count` models of `grain` from any layer below `layer`, other than `skip`."""
        pool = [r for r in self._below(layer, grain) if all(r is not s for s in skip)]
        return self.rng.sample(pool, min(count, len(pool)))

    def _pick(self, rel: Relation, alias: str, count: int, taken: set[str]) -> list[_Item]:
        """Up to `count` of `rel`'s metrics whose names are free, read as `alias.name`."""
        free = [c for c in rel.metrics() if c.name not in taken]
        picked = self.rng.sample(free, min(count, len(free)))
        picked.sort(key=lambda c: rel.names().index(c.name))
        taken.update(c.name for c in picked)
        return [_Item(f"{alias}.{c.name}" if alias else c.name, c) for c in picked]

    def _t_enrich_orders(
        self, index: int, layer: int
    ) -> tuple[_Model, tuple[str, ...], list[tuple[str, str]], str]:
        rng = self.rng
        n = f"{index:04d}"
        o = self._primary(layer, "order")
        customers = self._others(layer, "customer", rng.randint(1, 2), [])
        taken = set(GRAIN_COLUMNS["order"])
        items = [_Item(f"o.{k}", o.column(k)) for k in GRAIN_COLUMNS["order"]]
        cats = [c for c in o.categories() if c.name not in taken]
        if cats:
            cat = rng.choice(cats)
            taken.add(cat.name)
            items.append(_Item(f"o.{cat.name}", cat))
        items += self._pick(o, "o", 3, taken)
        joins = []
        for i, c in enumerate(customers, start=1):
            alias = f"c{i}"
            joins.append(f"LEFT JOIN {c.id} AS {alias} ON {alias}.customer_id = o.customer_id")
            for item in self._pick(c, alias, 2, taken):
                items.append(_Item(f"coalesce({item.sql}, 0)", item.column))
            ccats = [x for x in c.categories() if x.name not in taken]
            if ccats and rng.random() < 0.5:
                taken.add(ccats[0].name)
                items.append(_Item(f"{alias}.{ccats[0].name}", ccats[0]))
        items.append(self._tier(items, n))
        items.append(self._adjusted(items, n))
        model = _Model("order", items, "\n".join([f"FROM {o.id} AS o", *joins]))
        upstream = (o.id, *(c.id for c in customers))
        return (
            model,
            upstream,
            self._reads(items, {"o": o} | _aliases(customers, "c")),
            ("One row per order, with customer attributes."),
        )

    def _t_order_payments(
        self, index: int, layer: int
    ) -> tuple[_Model, tuple[str, ...], list[tuple[str, str]], str]:
        rng = self.rng
        n = f"{index:04d}"
        o = self._primary(layer, "order")
        (p,) = self._others(layer, "payment", 1, [])
        paid_metric = rng.choice(p.metrics())
        cte = (
            "SELECT\n"
            "        order_id,\n"
            "        count(*) AS payment_count,\n"
            f"        sum({paid_metric.name}) AS total_paid,\n"
            f"        max({paid_metric.name}) AS largest_payment\n"
            f"    FROM {p.id}\n"
            "    GROUP BY order_id"
        )
        taken = set(GRAIN_COLUMNS["order"])
        items = [_Item(f"o.{k}", o.column(k)) for k in GRAIN_COLUMNS["order"]]
        items += self._pick(o, "o", 3, taken)
        items += [
            _Item(
                "coalesce(paid.payment_count, 0)",
                Column(f"payment_count_{n}", "metric", "payments"),
            ),
            _Item("coalesce(paid.total_paid, 0)", Column(f"paid_{n}", "metric", paid_metric.root)),
            _Item(
                "paid.largest_payment", Column(f"largest_payment_{n}", "metric", paid_metric.root)
            ),
        ]
        joins = [f"FROM {o.id} AS o", "LEFT JOIN paid ON paid.order_id = o.order_id"]
        others = self._others(layer, "order", 1, [o]) if rng.random() < 0.5 else []
        for o2 in others:
            joins.append(f"LEFT JOIN {o2.id} AS o2 ON o2.order_id = o.order_id")
            for item in self._pick(o2, "o2", 2, taken):
                items.append(_Item(f"coalesce({item.sql}, 0)", item.column))
        items.append(self._tier(items, n))
        model = _Model("order", items, "\n".join(joins), ctes=[("paid", cte)])
        reads = self._reads(items, {"o": o} | _aliases(others, "o", start=2))
        reads += [(p.id, "order_id"), (p.id, paid_metric.name)]
        upstream = (o.id, p.id, *(x.id for x in others))
        return model, upstream, reads, "One row per order, with what was paid for it."

    def _t_customer_totals(
        self, index: int, layer: int
    ) -> tuple[_Model, tuple[str, ...], list[tuple[str, str]], str]:
        rng = self.rng
        n = f"{index:04d}"
        o = self._primary(layer, "order")
        m1, m2 = rng.choice(o.metrics()), rng.choice(o.metrics())
        since = _early_date(rng, 2023)
        cte = (
            "SELECT\n"
            "        customer_id,\n"
            "        order_date,\n"
            + ",\n".join(f"        {m.name}" for m in dict.fromkeys([m1, m2]))
            + f"\n    FROM {o.id}\n"
            f"    WHERE order_date >= DATE '{since}'"
        )
        items = [
            _Item("f.customer_id", o.column("customer_id")),
            _Item("count(*)", Column(f"order_count_{n}", "metric", "orders")),
            _Item(f"sum(f.{m1.name})", Column(f"{m1.root}_total_{n}", "metric", m1.root)),
            _Item(f"max(f.{m2.name})", Column(f"{m2.root}_max_{n}", "metric", m2.root)),
            _Item("min(f.order_date)", Column(f"first_order_date_{n}", "date")),
            _Item("max(f.order_date)", Column(f"last_order_date_{n}", "date")),
            _Item(
                "CASE WHEN count(*) >= 3 THEN 'high' WHEN count(*) = 2 THEN 'mid' ELSE 'low' END",
                Column(f"frequency_tier_{n}", "category", values=TIERS),
            ),
        ]
        joins = ["FROM filtered AS f"]
        customers = self._others(layer, "customer", 1, []) if rng.random() < 0.5 else []
        reads = [(o.id, "customer_id"), (o.id, "order_date"), (o.id, m1.name), (o.id, m2.name)]
        for c in customers:
            joins.append(f"LEFT JOIN {c.id} AS c ON c.customer_id = f.customer_id")
            cats = c.categories()
            if cats:
                items.insert(1, _Item(f"c.{cats[0].name}", cats[0]))
                reads.append((c.id, cats[0].name))
            reads.append((c.id, "customer_id"))
        joins.append("GROUP BY ALL" if rng.random() < 0.5 else _group_by(items))
        model = _Model("customer", items, "\n".join(joins), ctes=[("filtered", cte)])
        upstream = (o.id, *(c.id for c in customers))
        return model, upstream, reads, "One row per customer with orders since a date, with totals."

    def _t_running_orders(
        self, index: int, layer: int
    ) -> tuple[_Model, tuple[str, ...], list[tuple[str, str]], str]:
        rng = self.rng
        n = f"{index:04d}"
        o = self._primary(layer, "order")
        taken = set(GRAIN_COLUMNS["order"])
        items = [_Item(k, o.column(k)) for k in GRAIN_COLUMNS["order"]]
        picked = self._pick(o, "", 2, taken)
        items += picked
        m1 = picked[0].column if picked else rng.choice(o.metrics())
        m2 = picked[-1].column if picked else m1
        window = "PARTITION BY customer_id ORDER BY order_date, order_id"
        items += [
            _Item(
                f"sum({m1.name}) OVER ({window})",
                Column(f"{m1.root}_running_{n}", "metric", m1.root),
            ),
            _Item(f"row_number() OVER ({window})", Column(f"order_number_{n}", "metric", "orders")),
            _Item(
                f"avg({m2.name}) OVER (PARTITION BY customer_id)",
                Column(f"{m2.root}_customer_avg_{n}", "metric", m2.root),
            ),
            _Item(
                f"CASE WHEN lag(order_date) OVER ({window}) IS NULL THEN 1 ELSE 0 END",
                Column(f"is_first_order_{n}", "metric", "orders"),
            ),
        ]
        reads = [(o.id, c.name) for c in (*[o.column(k) for k in GRAIN_COLUMNS["order"]], m1, m2)]
        model = _Model("order", items, f"FROM {o.id}")
        return model, (o.id,), reads, "One row per order, with running totals per customer."

    def _t_passthrough(
        self, index: int, layer: int
    ) -> tuple[_Model, tuple[str, ...], list[tuple[str, str]], str]:
        rng = self.rng
        n = f"{index:04d}"
        grains = ["order", "order", "customer"] + (["day"] if self._below(layer, "day") else [])
        grain = rng.choice(grains)
        p = self._primary(layer, grain)
        reads = [(p.id, c.name) for c in p.columns]
        style = rng.choice(("star", "exclude", "join")) if len(p.columns) <= 14 else "exclude"
        metrics = p.metrics()
        if style == "exclude" and len(metrics) >= 2:
            dropped = rng.choice(metrics)
            kept = tuple(c for c in p.columns if c.name != dropped.name)
            items = [self._tier([_Item(c.name, c) for c in kept], n)]
            where = f"WHERE {UNIQUE_KEY[grain]} IS NOT NULL"
            model = _Model(
                grain,
                items,
                f"FROM {p.id}\n{where}",
                star=f"* EXCLUDE ({dropped.name})",
                star_columns=kept,
            )
            return model, (p.id,), reads, "Every column but one, with a tier."
        if style == "join" and grain in ("order", "customer"):
            others = self._others(layer, "customer", 1, [p])
            if others:
                c = others[0]
                key = "customer_id"
                taken = set(p.names())
                items = [
                    _Item(f"coalesce({i.sql}, 0)", i.column) for i in self._pick(c, "c", 2, taken)
                ]
                if items:
                    reads += [(c.id, key), *((c.id, i.column.name) for i in items)]
                    model = _Model(
                        grain,
                        items,
                        f"FROM {p.id} AS p\nLEFT JOIN {c.id} AS c ON c.{key} = p.{key}",
                        star="p.*",
                        star_columns=p.columns,
                    )
                    return (
                        model,
                        (p.id, c.id),
                        reads,
                        "Every column, with two more from another model.",
                    )
        base = [_Item(c.name, c) for c in p.columns]
        items = [self._tier(base, n)]
        if grain == "day":
            where = f"WHERE order_date >= DATE '{_early_date(rng, 2023)}'"
        else:
            where = f"WHERE {UNIQUE_KEY[grain]} IS NOT NULL"
        model = _Model(grain, items, f"FROM {p.id}\n{where}", star="*", star_columns=p.columns)
        return model, (p.id,), reads, "Every column, with a tier."

    def _t_customer_combine(
        self, index: int, layer: int
    ) -> tuple[_Model, tuple[str, ...], list[tuple[str, str]], str]:
        rng = self.rng
        n = f"{index:04d}"
        a = self._primary(layer, "customer")
        others = self._others(layer, "customer", rng.randint(1, 2), [a])
        taken = {"customer_id"}
        items = [_Item("a.customer_id", a.column("customer_id"))]
        cats = a.categories()
        if cats:
            taken.add(cats[0].name)
            items.append(_Item(f"a.{cats[0].name}", cats[0]))
        own = self._pick(a, "a", 3, taken)
        items += own
        joins = [f"FROM {a.id} AS a"]
        theirs: list[_Item] = []
        for i, b in enumerate(others, start=1):
            alias = f"b{i}"
            joins.append(f"LEFT JOIN {b.id} AS {alias} ON {alias}.customer_id = a.customer_id")
            for item in self._pick(b, alias, 2, taken):
                theirs.append(_Item(f"coalesce({item.sql}, 0)", item.column))
        items += theirs
        parts = [
            i.sql if i.sql.startswith("coalesce") else f"coalesce({i.sql}, 0)"
            for i in (own + theirs)[:3]
        ]
        if parts:
            items.append(
                _Item(" + ".join(parts), Column(f"combined_value_{n}", "metric", "combined"))
            )
        items.append(self._tier(items, n))
        model = _Model("customer", items, "\n".join(joins))
        reads = self._reads(items, {"a": a} | _aliases(others, "b"))
        return (
            model,
            (a.id, *(b.id for b in others)),
            reads,
            "One row per customer, from several models.",
        )

    def _t_daily(
        self, index: int, layer: int
    ) -> tuple[_Model, tuple[str, ...], list[tuple[str, str]], str]:
        rng = self.rng
        n = f"{index:04d}"
        o = self._primary(layer, "order")
        m = rng.choice(o.metrics())
        cte = (
            "SELECT\n"
            "        order_date,\n"
            "        count(*) AS orders,\n"
            f"        sum({m.name}) AS total\n"
            f"    FROM {o.id}\n"
            "    GROUP BY order_date"
        )
        items = [
            _Item("order_date", o.column("order_date")),
            _Item("orders", Column(f"order_count_{n}", "metric", "orders")),
            _Item("total", Column(f"{m.root}_daily_{n}", "metric", m.root)),
            _Item(
                "sum(total) OVER (PARTITION BY date_trunc('month', order_date) ORDER BY order_date)",
                Column(f"{m.root}_month_to_date_{n}", "metric", m.root),
            ),
            _Item(
                "avg(total) OVER (ORDER BY order_date ROWS BETWEEN 6 PRECEDING AND CURRENT ROW)",
                Column(f"{m.root}_7_day_avg_{n}", "metric", m.root),
            ),
        ]
        model = _Model("day", items, "FROM per_day", ctes=[("per_day", cte)])
        reads = [(o.id, "order_date"), (o.id, m.name)]
        return model, (o.id,), reads, "One row per day with orders, with running totals."

    def _t_daily_combine(
        self, index: int, layer: int
    ) -> tuple[_Model, tuple[str, ...], list[tuple[str, str]], str]:
        rng = self.rng
        n = f"{index:04d}"
        d = self._primary(layer, "day")
        others = self._others(layer, "day", rng.randint(1, 2), [d])
        taken = {"order_date"}
        items = [_Item("d.order_date", d.column("order_date"))]
        items += self._pick(d, "d", 3, taken)
        joins = [f"FROM {d.id} AS d"]
        for i, e in enumerate(others, start=1):
            alias = f"e{i}"
            joins.append(f"LEFT JOIN {e.id} AS {alias} ON {alias}.order_date = d.order_date")
            for item in self._pick(e, alias, 2, taken):
                items.append(_Item(f"coalesce({item.sql}, 0)", item.column))
        items.append(self._tier(items, n))
        model = _Model("day", items, "\n".join(joins))
        reads = self._reads(items, {"d": d} | _aliases(others, "e"))
        return (
            model,
            (d.id, *(e.id for e in others)),
            reads,
            "One row per day, from several models.",
        )

    # -- derived columns -----------------------------------------------------------------------

    def _tier(self, items: list[_Item], n: str) -> _Item:
        """A CASE that puts one of the items' metrics into low, mid and high."""
        metrics = [i for i in items if i.column.kind == "metric" and _simple(i.sql)]
        if not metrics:
            return _Item("'low'", Column(f"tier_{n}", "category", values=TIERS))
        m = self.rng.choice(metrics)
        low, high = sorted(self.rng.sample((1, 5, 10, 50, 100, 500, 1000), 2))
        return _Item(
            f"CASE\n        WHEN {m.sql} >= {high} THEN 'high'\n"
            f"        WHEN {m.sql} >= {low} THEN 'mid'\n        ELSE 'low'\n    END",
            Column(f"{m.column.root}_tier_{n}", "category", values=TIERS),
        )

    def _adjusted(self, items: list[_Item], n: str) -> _Item:
        """A CASE that halves a metric for one value of a category, or flags it when positive."""
        metrics = [i for i in items if i.column.kind == "metric" and _simple(i.sql)]
        cats = [i for i in items if i.column.kind == "category" and _simple(i.sql)]
        m = self.rng.choice(metrics) if metrics else None
        if m is None:
            return _Item("0", Column(f"adjusted_{n}", "metric", "adjusted"))
        if cats:
            c = self.rng.choice(cats)
            value = self.rng.choice(c.column.values)
            return _Item(
                f"CASE WHEN {c.sql} = '{value}' THEN {m.sql} * 0.5 ELSE {m.sql} END",
                Column(f"{m.column.root}_adjusted_{n}", "metric", m.column.root),
            )
        return _Item(
            f"CASE WHEN {m.sql} > 0 THEN 1 ELSE 0 END",
            Column(f"has_{m.column.root}_{n}", "metric", m.column.root),
        )

    @staticmethod
    def _reads(items: list[_Item], aliases: dict[str, Relation]) -> list[tuple[str, str]]:
        """(upstream, column) for every `alias.column` the items name, plus the join keys."""
        reads: dict[tuple[str, str], None] = {}
        for item in items:
            for alias, rel in aliases.items():
                for name in rel.names():
                    if f"{alias}.{name}" in item.sql:
                        reads[(rel.id, name)] = None
        for rel in aliases.values():
            for key in ("customer_id", "order_id", "order_date"):
                if key in rel.names():
                    reads[(rel.id, key)] = None
        return list(reads)

    # -- writing a model out -------------------------------------------------------------------

    def _write(
        self,
        rel_id: str,
        layer: int,
        model: _Model,
        template: str,
        upstream: tuple[str, ...],
        reads: list[tuple[str, str]],
        description: str,
        materialized: str | None = None,
    ) -> Relation:
        columns = (*model.star_columns, *(i.column for i in model.items))
        names = [c.name for c in columns]
        assert len(names) == len(set(names)), f"{rel_id}: duplicate columns {names}"
        rel = Relation(rel_id, model.grain, layer, columns, template, "", upstream, reads)
        schema, name = rel_id.split(".")
        rel.path = f"models/{schema}/{name}.sql"
        picked = self._assertions(rel) if self.rng.random() < 0.5 else []
        checks = [text for text, _ in picked]
        rel.checks = [sql for _, sql in picked]
        rel.assertions = len(checks)
        rel.kind = materialized or "table"
        lines = [f"-- @description {description}"]
        if materialized:
            lines.append(f"-- @materialized {materialized}")
        lines.append(f"-- @tags {'staging' if layer == 1 else f'layer{layer:02d}'}, generated")
        lines.append(f"-- @owner {OWNERS[hash_index(rel_id, len(OWNERS))]}")
        lines.append("")
        if model.ctes:
            ctes = [f"{name} AS (\n    {sql}\n)" for name, sql in model.ctes]
            lines.append("WITH " + ",\n\n".join(ctes))
            lines.append("")
        select = []
        if model.star:
            select.append(model.star)
        select += [i.render() for i in model.items]
        lines.append("SELECT\n    " + ",\n    ".join(select))
        lines.append(model.from_sql)
        query = lines[lines.index("", 0) + 1 :]  # after the directives
        rel.head = "\n".join(query[:-1])
        rel.tail = model.from_sql
        if checks:
            lines.append("")
            lines += [f"-- @assert {c}" for c in checks]
        self.files[rel.path] = "\n".join(lines) + "\n"
        return rel

    def _assertions(self, rel: Relation) -> list[tuple[str, str]]:
        """1-3 checks that hold by construction: unique keys, non-null keys, metrics >= 0.

        Each as its `@assert` text and as the one query the raw baseline runs for it."""
        key = UNIQUE_KEY[rel.grain]
        grain = GRAIN_COLUMNS[rel.grain]
        candidates = [
            (f"unique({key})", _RAW_CHECK["unique"](key)),
            (f"not_null({', '.join(grain)})", _RAW_CHECK["not_null"](*grain)),
        ]
        metrics = rel.metrics()
        if metrics:
            m = self.rng.choice(metrics)
            candidates.append(
                (f"{m.name} >= 0", f"SELECT count(*) FROM {{t}} WHERE NOT ({m.name} >= 0)")
            )
            total = f"coalesce(sum({metrics[-1].name}), 0)"
            candidates.append((f"{total} >= 0", f"SELECT {total} >= 0 FROM {{t}}"))
        tiers = [c for c in rel.columns if c.values == TIERS]
        if tiers:
            name = tiers[-1].name
            candidates.append(
                (
                    f"accepted_values({name}, 'low', 'mid', 'high')",
                    f"SELECT count(*) FROM {{t}} WHERE {name} NOT IN ('low', 'mid', 'high')",
                )
            )
        candidates.append(("row_count() > 0", _ROWS_CHECK))
        picked = self.rng.sample(candidates, self.rng.randint(1, 3))
        return sorted(picked, key=candidates.index)


def edit(root: Path, model: str, n: int) -> None:
    """Change `model`'s query in the generated project at `root`: it keeps only the rows whose
    key differs from `'edit-n'` (all of them, though no tool can know that), so every model
    downstream must be rebuilt, and each `n` is a new version (0 restores the generated query).
    The model file and baseline.json change together, so the raw baseline runs the same SQL."""
    path = root / BASELINE
    baseline = json.loads(path.read_text(encoding="utf-8"))
    entry = next((e for e in baseline if e["id"] == model), None)
    if entry is None or entry["kind"] == "source":
        raise ValueError(f"{model} is not a generated model")
    schema, name = model.split(".")
    file = root / "models" / schema / f"{name}.sql"
    text = file.read_text(encoding="utf-8")
    before = query_of(entry)
    assert text.count(before) == 1, f"{file} no longer holds its generated query"
    entry["edit"] = n
    file.write_text(text.replace(before, query_of(entry)), encoding="utf-8", newline="\n")
    path.write_text(json.dumps(baseline, indent=1) + "\n", encoding="utf-8")


def query_of(entry: dict[str, Any]) -> str:
    """A baseline.json entry's query, with its edit if it has one."""
    query = f"{entry['head']}\n{entry['tail']}"
    if entry.get("edit"):
        key = entry["key"]
        query = (
            f"SELECT *\nFROM (\n{query}\n) AS {EDIT_ALIAS}\n"
            f"WHERE coalesce(CAST({EDIT_ALIAS}.{key} AS VARCHAR), '') <> 'edit-{entry['edit']}'"
        )
    return query


def hash_index(text: str, size: int) -> int:
    """A stable index in `range(size)` from a string (Python's `hash` changes per process)."""
    return sum(text.encode()) % size


def _simple(sql: str) -> bool:
    """A column reference or one function call: short enough to repeat inside a CASE."""
    return "CASE" not in sql and " + " not in sql and "\n" not in sql


def _aliases(rels: list[Relation], prefix: str, start: int = 1) -> dict[str, Relation]:
    return {f"{prefix}{i}": r for i, r in enumerate(rels, start=start)}


def _group_by(items: list[_Item]) -> str:
    keys = [i.sql for i in items if not any(f in i.sql for f in ("count(", "sum(", "max(", "min("))]
    return "GROUP BY " + ", ".join(keys)


def _early_date(rng: random.Random, year: int) -> str:
    return dt.date(year, 1, 1 + rng.randrange(0, 28)).isoformat()


_RAW_CHECK = {
    "unique": lambda key: (
        f"SELECT count(*) FROM (SELECT {key} FROM {{t}} GROUP BY {key} HAVING count(*) > 1)"
    ),
    "not_null": lambda *names: (
        f"SELECT count(*) FROM {{t}} WHERE {' OR '.join(f'{n} IS NULL' for n in names)}"
    ),
}
_ROWS_CHECK = "SELECT count(*) > 0 FROM {t}"


def _raw_load(name: str, ddl: str) -> str:
    """How the raw baseline loads a source: its CSV read by DuckDB, each column cast to its
    declared type (what sqlops runs for a source with @location)."""
    columns = [line.split() for line in ddl.split(",\n")]
    select = ", ".join(f"CAST({n} AS {t}) AS {n}" for n, t in columns)
    return (
        f"CREATE TABLE raw.{name} AS SELECT {select} "
        f"FROM read_csv('data/{name}.csv', header = true, auto_detect = true)"
    )


def _source_sql(name: str, ddl: str, description: str, grain: str) -> str:
    key = UNIQUE_KEY[grain]
    return (
        f"-- @description {description}\n"
        f"-- @location data/{name}.csv\n"
        "-- @owner platform@example.com\n"
        "-- @tags raw\n\n"
        f"CREATE TABLE raw.{name} (\n{ddl}\n)\n\n"
        f"-- @assert unique({key})\n"
        f"-- @assert not_null({key})\n"
        "-- @assert row_count() > 0\n"
    )


_REGIONS = ("north", "south", "east", "west")
_SEGMENTS = ("consumer", "smb", "enterprise")
_STATUSES = ("placed", "shipped", "completed", "returned", "cancelled")
_CHANNELS = ("web", "store", "phone")
_METHODS = ("card", "bank", "voucher")

_RAW: dict[str, tuple[str, tuple[Column, ...], str, str]] = {
    "customers": (
        "customer",
        (
            Column("customer_id", "key"),
            Column("region", "category", values=_REGIONS),
            Column("segment", "category", values=_SEGMENTS),
            Column("signup_date", "date"),
            Column("credit_limit", "metric", "credit"),
        ),
        "    customer_id  BIGINT,\n    region       VARCHAR,\n    segment      VARCHAR,\n"
        "    signup_date  DATE,\n    credit_limit DOUBLE",
        "Customers as exported from the CRM.",
    ),
    "orders": (
        "order",
        (
            Column("order_id", "key"),
            Column("customer_id", "key"),
            Column("order_date", "date"),
            Column("status", "category", values=_STATUSES),
            Column("channel", "category", values=_CHANNELS),
            Column("item_count", "metric", "items"),
            Column("shipping_cost", "metric", "shipping"),
        ),
        "    order_id      BIGINT,\n    customer_id   BIGINT,\n    order_date    DATE,\n"
        "    status        VARCHAR,\n    channel       VARCHAR,\n    item_count    BIGINT,\n"
        "    shipping_cost DOUBLE",
        "Orders as exported every night from the web shop.",
    ),
    "payments": (
        "payment",
        (
            Column("payment_id", "key"),
            Column("order_id", "key"),
            Column("method", "category", values=_METHODS),
            Column("amount", "metric", "amount"),
            Column("paid_date", "date"),
        ),
        "    payment_id BIGINT,\n    order_id   BIGINT,\n    method     VARCHAR,\n"
        "    amount     DOUBLE,\n    paid_date  DATE",
        "Payments as exported from the payment provider.",
    ),
}

# template -> (weight, the grains it needs below it)
_TEMPLATES: dict[str, tuple[float, tuple[str, ...]]] = {
    "enrich_orders": (3.0, ("order", "customer")),
    "order_payments": (1.5, ("order", "payment")),
    "customer_totals": (2.0, ("order",)),
    "running_orders": (2.0, ("order",)),
    "passthrough": (2.0, ("order", "customer")),
    "customer_combine": (1.5, ("customer",)),
    "daily": (1.0, ("order",)),
    "daily_combine": (1.0, ("day",)),
}

_TOML = """\
[project]
name = "bench"
dialect = "duckdb"
default_schema = "main"
default_target = "local"

[targets.local]
engine = "duckdb"
path = "bench.duckdb"
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.generate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("out", type=Path, help="folder to write the project to (new or empty)")
    parser.add_argument("--models", type=int, default=100, help="number of models (default 100)")
    parser.add_argument("--rows", type=int, default=1000, help="rows per raw source (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    try:
        project = generate(args.out, args.models, args.rows, args.seed)
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(project.to_json(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
