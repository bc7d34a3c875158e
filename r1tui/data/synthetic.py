"""A seeded generator of verifiable reasoning problems: offline data that means something.

Three domains, balanced (row ``i`` is ``DOMAINS[i % 3]``):

- math: linear equations, quadratic equations, percentages, arithmetic word problems;
- physics: kinematics, trains meeting, Ohm's law and power, unit conversions;
- coding: what a short Python program prints, the time complexity of a loop.

Every row is ``{"question", "reasoning", "answer", "domain"}``: a step-by-step trace
and a final answer the generator has checked (equations by substitution, programs by
running them). The same ``(n, seed)`` always gives the same rows.

Held-out sets: every problem's parameters hash into one of ``PARTITIONS`` buckets and
a seed only keeps problems of bucket ``seed % PARTITIONS``, so seeds that differ
modulo ``PARTITIONS`` (the training seed 0 and the evaluator's 1_000_003, for
instance) give disjoint problem sets by construction, not by luck.
"""

from __future__ import annotations

import contextlib
import io
import random
import zlib
from collections.abc import Callable
from fractions import Fraction

DOMAINS = ("math", "physics", "coding")
PARTITIONS = 16
_MAX_DRAWS_PER_PROBLEM = 20_000

Params = tuple
Problem = tuple[str, list[str], str]  # question, reasoning steps, answer


def generate_problems(n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` distinct problems for ``seed``: rows {"question", "reasoning", "answer", "domain"}."""
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(f"r1tui-synthetic:{seed}")
    bucket = seed % PARTITIONS
    seen: set[tuple] = set()
    rows = []
    for index in range(n):
        domain = DOMAINS[index % len(DOMAINS)]
        templates = _TEMPLATES[domain]
        for _ in range(_MAX_DRAWS_PER_PROBLEM):
            name, sample, build = templates[rng.randrange(len(templates))]
            params = sample(rng)
            signature = (name, params)
            if signature in seen or partition_of(signature) != bucket:
                continue
            seen.add(signature)
            question, steps, answer = build(*params)
            rows.append({"question": question, "reasoning": "\n".join(steps), "answer": answer, "domain": domain})
            break
        else:  # pragma: no cover - the parameter spaces are far larger than any n used
            raise RuntimeError(f"synthetic generator ran out of distinct {domain} problems for seed {seed}")
    return rows


def partition_of(signature: tuple) -> int:
    """The bucket a problem belongs to (stable across processes and Python versions)."""
    return zlib.crc32(repr(signature).encode("utf-8")) % PARTITIONS


# -- number formatting -------------------------------------------------------------------

def fmt(value: Fraction | int | float) -> str:
    """A number as a person writes it: 6, -2.5, 0.125 (exact values only, no float noise)."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    if Fraction(text) != value:
        raise ValueError(f"{value} has no short exact decimal; write the step another way")
    return text


def _signed(value: int, first: bool = False) -> str:
    """Terms of a polynomial: '+ 3', '- 3' (or '-3' first)."""
    if first:
        return str(value)
    return f"+ {value}" if value >= 0 else f"- {-value}"


def _coef(value: int, var: str, first: bool = False) -> str:
    magnitude = "" if abs(value) == 1 else str(abs(value))
    if first:
        return ("-" if value < 0 else "") + magnitude + var
    return ("+ " if value >= 0 else "- ") + magnitude + var


# -- math --------------------------------------------------------------------------------

def _linear_sample(rng: random.Random) -> Params:
    a = rng.choice([i for i in range(-15, 16) if i not in (0, 1, -1)])
    x = rng.randint(-40, 40)
    b = rng.randint(-90, 90)
    var = rng.choice("xyzn")
    return (a, x, b, var)


def _linear_build(a: int, x: int, b: int, var: str) -> Problem:
    c = a * x + b
    question = f"Solve for {var}: {a}{var} {_signed(b)} = {c}"
    steps = [f"We need the value of {var} that makes {a}{var} {_signed(b)} equal to {c}."]
    if b >= 0:
        steps.append(f"Subtract {b} from both sides: {a}{var} = {c} - {b} = {c - b}.")
    else:
        steps.append(f"Add {-b} to both sides: {a}{var} = {c} + {-b} = {c - b}.")
    steps.append(f"Divide both sides by {a}: {var} = {c - b} / {a} = {x}.")
    check = a * x + b
    steps.append(f"Check: {a} * {x} {_signed(b)} = {a * x} {_signed(b)} = {check}, which matches {c}.")
    _verify(check == c, "linear")
    return question, steps, str(x)


def _quadratic_sample(rng: random.Random) -> Params:
    r1, r2 = sorted(rng.sample(range(-12, 13), 2))
    k = rng.choice([1, 1, 1, 2, 3, -1])
    return (k, r1, r2)


def _quadratic_build(k: int, r1: int, r2: int) -> Problem:
    a, b, c = k, -k * (r1 + r2), k * r1 * r2
    poly = f"{_coef(a, 'x^2', first=True)} {_coef(b, 'x')} {_signed(c)}".replace(" + 0x", "").replace(" + 0", "")
    question = f"Find all real solutions of {poly} = 0. Give the roots from smallest to largest, separated by a comma."
    disc = b * b - 4 * a * c
    root = int(round(disc ** 0.5))
    steps = [
        f"This is a quadratic a x^2 + b x + c = 0 with a = {a}, b = {b}, c = {c}.",
        f"Discriminant: b^2 - 4ac = {b * b} - ({4 * a * c}) = {disc}.",
        f"The square root of {disc} is {root}, so there are two real roots.",
        f"x = (-b ± {root}) / (2a) = ({-b} ± {root}) / {2 * a}.",
        f"x1 = ({-b} - {root}) / {2 * a} = {fmt(Fraction(-b - root, 2 * a))}, "
        f"x2 = ({-b} + {root}) / {2 * a} = {fmt(Fraction(-b + root, 2 * a))}.",
    ]
    roots = sorted({Fraction(-b - root, 2 * a), Fraction(-b + root, 2 * a)})
    for r in roots:
        steps.append(f"Check x = {fmt(r)}: {a}*({fmt(r)})^2 + ({b})*({fmt(r)}) + ({c}) = {fmt(a * r * r + b * r + c)}.")
    _verify(root * root == disc and roots == [r1, r2] and all(a * r * r + b * r + c == 0 for r in roots), "quadratic")
    return question, steps, ", ".join(fmt(r) for r in roots)


_PERCENTS = [5, 10, 12, 15, 20, 25, 30, 35, 40, 45, 50, 60, 65, 75, 80, 90, 120, 150]
_ITEMS = ["jacket", "bicycle", "laptop", "pair of shoes", "lamp", "backpack", "guitar", "camera", "desk", "kettle"]


def _percent_sample(rng: random.Random) -> Params:
    kind = rng.choice(["of", "discount", "increase"])
    percent = rng.choice(_PERCENTS)
    base = rng.randrange(20, 2000, 4)
    item = rng.choice(_ITEMS) if kind != "of" else ""  # canonical: no unused parameter in the signature
    return (kind, percent, base, item)


def _percent_build(kind: str, percent: int, base: int, item: str) -> Problem:
    part = Fraction(percent, 100) * base
    if kind == "of":
        question = f"What is {percent}% of {base}?"
        steps = [f"{percent}% means {percent}/100 = {fmt(Fraction(percent, 100))}.",
                 f"Multiply: {fmt(Fraction(percent, 100))} * {base} = {fmt(part)}.",
                 f"Check: {fmt(part)} / {base} = {fmt(part / base)} = {percent}%."]
        answer = part
    elif kind == "discount":
        answer = base - part
        question = f"A {item} costs ${base}. It is on sale for {percent}% off. What is the sale price in dollars?"
        steps = [f"The discount is {percent}% of {base}: {fmt(Fraction(percent, 100))} * {base} = {fmt(part)}.",
                 f"Subtract it from the price: {base} - {fmt(part)} = {fmt(answer)}.",
                 f"Check: {fmt(answer)} is {fmt(100 - percent)}% of {base}, and {fmt(Fraction(100 - percent, 100))} * {base} = {fmt(answer)}."]
    else:
        answer = base + part
        question = f"A {item} cost ${base} last year. Its price rose by {percent}%. What does it cost now, in dollars?"
        steps = [f"The increase is {percent}% of {base}: {fmt(Fraction(percent, 100))} * {base} = {fmt(part)}.",
                 f"Add it to the old price: {base} + {fmt(part)} = {fmt(answer)}.",
                 f"Check: {fmt(Fraction(100 + percent, 100))} * {base} = {fmt(answer)}."]
    _verify(answer == {"of": part, "discount": base * Fraction(100 - percent, 100),
                       "increase": base * Fraction(100 + percent, 100)}[kind], "percent")
    return question, steps, fmt(answer)


_NAMES = ["Sam", "Ana", "Lee", "Maya", "Omar", "Ines", "Tom", "Priya", "Jonas", "Zoe", "Ravi", "Lucia"]
_GOODS = [("pencils", "notebooks"), ("apples", "pears"), ("stamps", "envelopes"), ("coffees", "muffins"),
          ("tickets", "programs"), ("bolts", "nuts")]


def _word_sample(rng: random.Random) -> Params:
    name = rng.choice(_NAMES)
    goods = rng.randrange(len(_GOODS))
    price_a, price_b = rng.randint(1, 9), rng.randint(2, 15)
    count_a, count_b = rng.randint(2, 12), rng.randint(1, 8)
    total = price_a * count_a + price_b * count_b
    paid = (total // 10 + 1 + rng.randint(0, 3)) * 10
    return (name, goods, price_a, count_a, price_b, count_b, paid)


def _word_build(name: str, goods: int, price_a: int, count_a: int, price_b: int, count_b: int, paid: int) -> Problem:
    thing_a, thing_b = _GOODS[goods]
    cost_a, cost_b = price_a * count_a, price_b * count_b
    total = cost_a + cost_b
    change = paid - total
    question = (f"{thing_a.capitalize()} cost ${price_a} each and {thing_b} cost ${price_b} each. {name} buys "
                f"{count_a} {thing_a} and {count_b} {thing_b} and pays with ${paid}. How much change, in dollars, "
                f"does {name} get?")
    steps = [f"Cost of the {thing_a}: {count_a} * {price_a} = {cost_a}.",
             f"Cost of the {thing_b}: {count_b} * {price_b} = {cost_b}.",
             f"Total: {cost_a} + {cost_b} = {total}.",
             f"Change: {paid} - {total} = {change}.",
             f"Check: {total} + {change} = {total + change}, the amount paid."]
    _verify(change > 0 and total + change == paid, "word problem")
    return question, steps, str(change)


# -- physics -----------------------------------------------------------------------------

def _kinematics_sample(rng: random.Random) -> Params:
    ask = rng.choice(["speed", "distance"])
    u = rng.randint(0, 30)
    a = rng.choice([Fraction(n, 2) for n in range(1, 13)])
    t = rng.randint(2, 20)
    vehicle = rng.choice(["car", "cyclist", "train", "skier", "rocket sled", "motorbike"])
    return (ask, u, a, t, vehicle)


def _kinematics_build(ask: str, u: int, a: Fraction, t: int, vehicle: str) -> Problem:
    start = "starts from rest" if u == 0 else f"moves at {u} m/s"
    if ask == "speed":
        v = u + a * t
        question = (f"A {vehicle} {start} and accelerates uniformly at {fmt(a)} m/s^2 for {t} s. "
                    f"What is its final speed in m/s?")
        steps = ["With constant acceleration, v = u + a t.",
                 f"u = {u} m/s, a = {fmt(a)} m/s^2, t = {t} s.",
                 f"a t = {fmt(a)} * {t} = {fmt(a * t)} m/s.",
                 f"v = {u} + {fmt(a * t)} = {fmt(v)} m/s.",
                 f"Check: (v - u) / t = ({fmt(v)} - {u}) / {t} = {fmt((v - u) / t)} m/s^2, the given acceleration."]
        _verify((v - u) / t == a, "kinematics")
        return question, steps, fmt(v)
    s = u * t + a * t * t / 2
    question = (f"A {vehicle} {start} and accelerates uniformly at {fmt(a)} m/s^2 for {t} s. "
                f"How far does it travel in that time, in metres?")
    steps = ["With constant acceleration, s = u t + (1/2) a t^2.",
             f"u t = {u} * {t} = {u * t} m.",
             f"(1/2) a t^2 = 0.5 * {fmt(a)} * {t * t} = {fmt(a * t * t / 2)} m.",
             f"s = {u * t} + {fmt(a * t * t / 2)} = {fmt(s)} m.",
             f"Check with the average speed: final speed {fmt(u + a * t)} m/s, average ({u} + {fmt(u + a * t)}) / 2 "
             f"= {fmt((2 * u + a * t) / 2)} m/s, times {t} s = {fmt((2 * u + a * t) / 2 * t)} m."]
    _verify((2 * u + a * t) / 2 * t == s, "kinematics")
    return question, steps, fmt(s)


_TOWNS = ["Ashford", "Brampton", "Corby", "Dunmore", "Elgin", "Fenwick", "Glenrock", "Harlow", "Inverey", "Jarrow"]


def _trains_sample(rng: random.Random) -> Params:
    v1, v2 = rng.randrange(40, 161, 5), rng.randrange(40, 161, 5)
    quarter_hours = rng.randint(2, 24)
    town_a, town_b = rng.sample(_TOWNS, 2)
    ask = rng.choice(["time", "place"])
    return (v1, v2, quarter_hours, town_a, town_b, ask)


def _trains_build(v1: int, v2: int, quarter_hours: int, town_a: str, town_b: str, ask: str) -> Problem:
    t = Fraction(quarter_hours, 4)
    d = (v1 + v2) * t
    question = (f"A train leaves {town_a} towards {town_b} at {v1} km/h. At the same moment another train leaves "
                f"{town_b} towards {town_a} at {v2} km/h. The towns are {fmt(d)} km apart. ")
    question += ("After how many hours do the trains meet?" if ask == "time"
                 else f"How far from {town_a}, in km, do they meet?")
    steps = ["The trains move towards each other, so the gap closes at the sum of their speeds.",
             f"Closing speed: {v1} + {v2} = {v1 + v2} km/h.",
             f"Time to meet: {fmt(d)} / {v1 + v2} = {fmt(t)} h."]
    if ask == "time":
        answer = t
    else:
        answer = v1 * t
        steps.append(f"The first train covers {v1} * {fmt(t)} = {fmt(answer)} km from {town_a}.")
    steps.append(f"Check: {v1} * {fmt(t)} + {v2} * {fmt(t)} = {fmt(v1 * t)} + {fmt(v2 * t)} = {fmt(v1 * t + v2 * t)} km, "
                 "the full distance.")
    _verify(v1 * t + v2 * t == d, "trains")
    return question, steps, fmt(answer)


def _ohm_sample(rng: random.Random) -> Params:
    ask = rng.choice(["current", "resistance", "voltage", "power"])
    current = Fraction(rng.randint(1, 40), 4)
    resistance = rng.choice([2, 4, 5, 8, 10, 12, 15, 20, 24, 30, 40, 48, 50, 60, 100, 120])
    return (ask, current, resistance)


def _ohm_build(ask: str, current: Fraction, resistance: int) -> Problem:
    voltage = current * resistance
    if ask == "current":
        question = f"A {fmt(voltage)} V source drives a {resistance} ohm resistor. What current flows, in amperes?"
        steps = ["Ohm's law: V = I R, so I = V / R.", f"I = {fmt(voltage)} / {resistance} = {fmt(current)} A."]
        answer = current
    elif ask == "resistance":
        question = f"A current of {fmt(current)} A flows through a resistor with {fmt(voltage)} V across it. What is its resistance in ohms?"
        steps = ["Ohm's law: V = I R, so R = V / I.", f"R = {fmt(voltage)} / {fmt(current)} = {resistance} ohm."]
        answer = Fraction(resistance)
    elif ask == "voltage":
        question = f"A current of {fmt(current)} A flows through a {resistance} ohm resistor. What is the voltage across it, in volts?"
        steps = ["Ohm's law: V = I R.", f"V = {fmt(current)} * {resistance} = {fmt(voltage)} V."]
        answer = voltage
    else:
        power = voltage * current
        question = f"A current of {fmt(current)} A flows through a {resistance} ohm resistor. How much power does it dissipate, in watts?"
        steps = ["Power in a resistor: P = I^2 R (from P = V I and V = I R).",
                 f"I^2 = {fmt(current)}^2 = {fmt(current * current)}.",
                 f"P = {fmt(current * current)} * {resistance} = {fmt(power)} W.",
                 f"Check with P = V I: V = {fmt(voltage)} V, and {fmt(voltage)} * {fmt(current)} = {fmt(power)} W."]
        answer = power
    steps.append(f"Check: {fmt(current)} A * {resistance} ohm = {fmt(current * resistance)} V, consistent with the numbers given.")
    _verify(current * resistance == voltage, "ohm")
    return question, steps, fmt(answer)


# (from unit, to unit, factor as a Fraction: to = from * factor, how the factor is explained)
_CONVERSIONS = [
    ("km/h", "m/s", Fraction(1000, 3600), "1 km/h = 1000 m / 3600 s = 1/3.6 m/s"),
    ("m/s", "km/h", Fraction(3600, 1000), "1 m/s = 3600 m/h = 3.6 km/h"),
    ("minutes", "seconds", Fraction(60), "1 minute = 60 seconds"),
    ("hours", "minutes", Fraction(60), "1 hour = 60 minutes"),
    ("km", "m", Fraction(1000), "1 km = 1000 m"),
    ("g", "kg", Fraction(1, 1000), "1 g = 1/1000 kg"),
    ("cm", "m", Fraction(1, 100), "1 cm = 1/100 m"),
    ("kWh", "J", Fraction(3_600_000), "1 kWh = 1000 W * 3600 s = 3,600,000 J"),
    ("mA", "A", Fraction(1, 1000), "1 mA = 1/1000 A"),
    ("litres", "cm^3", Fraction(1000), "1 litre = 1000 cm^3"),
]


def _units_sample(rng: random.Random) -> Params:
    which = rng.randrange(len(_CONVERSIONS))
    # km/h -> m/s divides by 3.6: multiples of 18 give a short decimal
    value = rng.randint(1, 60) * 18 if _CONVERSIONS[which][2] == Fraction(1000, 3600) else rng.randint(1, 400)
    return (which, value)


def _power(number: int, prime: int) -> int:
    """How many times ``prime`` divides ``number``."""
    count = 0
    while number % prime == 0:
        number, count = number // prime, count + 1
    return count


def _units_build(which: int, value: int) -> Problem:
    source, target, factor, why = _CONVERSIONS[which]
    result = value * factor
    question = f"Convert {value} {source} to {target}."
    # 1/3.6 has no exact decimal: divide by 3.6 rather than multiply by 0.277778.
    exact = factor.denominator == 2 ** _power(factor.denominator, 2) * 5 ** _power(factor.denominator, 5)
    times, undo = (f"* {fmt(factor)}", f"/ {fmt(factor)}") if exact else (f"/ {fmt(1 / factor)}", f"* {fmt(1 / factor)}")
    steps = [f"Conversion factor: {why}.",
             f"So {value} {source} = {value} {times} {target} = {fmt(result)} {target}.",
             f"Check: {fmt(result)} {undo} = {fmt(result / factor)} {source}."]
    _verify(result / factor == value, "units")
    return question, steps, fmt(result)


# -- coding ------------------------------------------------------------------------------

def _program_sample(rng: random.Random) -> Params:
    kind = rng.choice(["sum_loop", "halving", "string", "filter"])
    if kind == "sum_loop":
        start = rng.randint(0, 5)
        return (kind, (start, start + rng.randint(2, 6), rng.randint(1, 5), rng.randint(0, 10)))
    if kind == "halving":
        return (kind, (rng.randint(5, 500), rng.choice([2, 3])))
    if kind == "string":
        word = rng.choice(["python", "reason", "mistral", "kernel", "vector", "tensor", "string", "binary", "thread",
                           "socket", "lambda", "module"])
        op = rng.choice(["reverse_upper", "count_vowels", "slice"])
        return (kind, (word, op, rng.randint(1, 3) if op != "reverse_upper" else 0))  # canonical: unused -> 0
    values = tuple(rng.randint(-9, 30) for _ in range(rng.randint(4, 7)))
    return (kind, (values, rng.choice([2, 3]), rng.choice(["sum", "max", "len"])))


def _program_build(kind: str, args: tuple) -> Problem:
    if kind == "sum_loop":
        start, stop, k, total0 = args
        code = f"total = {total0}\nfor i in range({start}, {stop}):\n    total += i * {k}\nprint(total)"
        steps, total = [f"total starts at {total0}; i runs over {list(range(start, stop))}."], total0
        for i in range(start, stop):
            steps.append(f"i = {i}: total = {total} + {i} * {k} = {total + i * k}.")
            total += i * k
        steps.append(f"After the loop the program prints {total}.")
        answer = str(total)
    elif kind == "halving":
        n0, d = args
        code = f"n = {n0}\nsteps = 0\nwhile n > 1:\n    n //= {d}\n    steps += 1\nprint(steps)"
        steps, n, count = [f"n starts at {n0}; each pass floor-divides n by {d} until n <= 1."], n0, 0
        while n > 1:
            steps.append(f"pass {count + 1}: n = {n} // {d} = {n // d}.")
            n //= d
            count += 1
        steps.append(f"The loop ran {count} times, so it prints {count}.")
        answer = str(count)
    elif kind == "string":
        word, op, k = args
        if op == "reverse_upper":
            code = f"s = {word!r}\nprint(s[::-1].upper())"
            steps = [f"s[::-1] reverses {word!r} to {word[::-1]!r}.", f".upper() gives {word[::-1].upper()!r}."]
            answer = word[::-1].upper()
        elif op == "count_vowels":
            code = f"s = {word!r}\nprint(sum(1 for c in s if c in 'aeiou') * {k})"
            vowels = [c for c in word if c in "aeiou"]
            steps = [f"The vowels of {word!r} are {vowels}, {len(vowels)} of them.",
                     f"Times {k}: {len(vowels)} * {k} = {len(vowels) * k}."]
            answer = str(len(vowels) * k)
        else:
            code = f"s = {word!r}\nprint(s[{k}:{k + 3}] + s[-{k}:])"
            steps = [f"s[{k}:{k + 3}] is the characters at positions {k} to {k + 2}: {word[k:k + 3]!r}.",
                     f"s[-{k}:] is the last {k} character(s): {word[-k:]!r}.",
                     f"Joined: {word[k:k + 3] + word[-k:]!r}."]
            answer = word[k:k + 3] + word[-k:]
        steps.append(f"So the program prints {answer}.")
    else:
        values, m, reducer = args
        code = f"xs = {list(values)}\nkept = [x for x in xs if x % {m} == 0]\nprint({reducer}(kept))"
        kept = [x for x in values if x % m == 0]
        steps = [f"Check each value for divisibility by {m}: " +
                 ", ".join(f"{x} {'yes' if x % m == 0 else 'no'}" for x in values) + ".",
                 f"kept = {kept}."]
        if reducer == "max" and not kept:
            kept = []
            code = code.replace("print(max(kept))", "print(max(kept, default=0))")
            steps.append("kept is empty, so max(kept, default=0) is 0.")
            answer = "0"
        else:
            value = {"sum": sum, "max": max, "len": len}[reducer](kept)
            steps.append(f"{reducer}(kept) = {value}.")
            answer = str(value)
        steps.append(f"So the program prints {answer}.")
    printed = _run(code)
    _verify(printed == answer, f"program {kind}: ran {printed!r}, traced {answer!r}")
    question = f"What does this Python program print?\n\n```python\n{code}\n```"
    return question, ["Trace the program line by line."] + steps, answer


def _run(code: str) -> str:
    """Run one of our own generated programs and return what it printed (the check)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<synthetic>", "exec"), {"__builtins__": {"print": print, "range": range, "sum": sum,
                                                                      "max": max, "len": len}})
    return out.getvalue().strip()


# (loop shape, complexity, why)
_LOOPS = [
    ("for {i} in range(n):\n        {body}", "O(n)", "one loop over n items, constant work per pass"),
    ("for {i} in range(n):\n        for {j} in range(n):\n            {body}", "O(n^2)",
     "two nested loops over n items each: n * n passes"),
    ("for {i} in range(n):\n        for {j} in range({i}):\n            {body}", "O(n^2)",
     "the inner loop runs 0 + 1 + ... + (n-1) = n(n-1)/2 times in total"),
    ("{i} = 1\n    while {i} < n:\n        {body}\n        {i} *= 2", "O(log n)",
     "the counter doubles each pass, so it reaches n after about log2(n) passes"),
    ("for {i} in range(n):\n        {j} = 1\n        while {j} < n:\n            {body}\n            {j} *= 2", "O(n log n)",
     "n outer passes, each with a doubling inner loop of about log2(n) passes"),
    ("for {i} in range(0, n, {step}):\n        {body}", "O(n)",
     "the loop takes n/{step} passes; constant factors do not change the growth"),
    ("for {i} in range(n):\n        {body}\n    for {j} in range(n):\n        {body}", "O(n)",
     "two loops one after the other: n + n = 2n passes"),
    ("for {i} in range(n):\n        for {j} in range(n):\n            for k in range(n):\n                {body}", "O(n^3)",
     "three nested loops over n items: n * n * n passes"),
]
_FUNCS = ["work", "scan", "count_pairs", "process", "tally", "walk", "measure", "visit"]
_VARS = [("i", "j"), ("a", "b"), ("p", "q"), ("row", "col"), ("x", "y"), ("u", "v")]
_BODIES = ["total += {c}", "total += {i} * {c}", "total = total + {c}", "total -= {c}", "total ^= {c}",
           "total += {c} if total % 2 else 1"]


def _complexity_sample(rng: random.Random) -> Params:
    loop = rng.randrange(len(_LOOPS))
    step = rng.choice([2, 3, 4, 5]) if "{step}" in _LOOPS[loop][0] else 0  # canonical: unused -> 0
    return (loop, rng.randrange(len(_FUNCS)), rng.randrange(len(_VARS)), rng.randrange(len(_BODIES)),
            rng.randint(1, 9), step)


def _complexity_build(loop: int, func: int, names: int, body: int, constant: int, step: int) -> Problem:
    shape, answer, why = _LOOPS[loop]
    i, j = _VARS[names]
    body_text = _BODIES[body].format(c=constant, i=i)
    code = (f"def {_FUNCS[func]}(n):\n    total = 0\n    "
            + shape.format(i=i, j=j, body=body_text, step=step) + "\n    return total")
    question = (f"What is the time complexity, in big-O notation as a function of n, of this Python function?\n\n"
                f"```python\n{code}\n```")
    steps = ["Count how many times the innermost statement runs as n grows.",
             f"The loop structure: {why.format(step=step)}.",
             f"The body `{body_text}` is constant time.",
             f"Drop constant factors and lower-order terms: the running time grows as {answer}."]
    compile(code, "<synthetic>", "exec")  # the snippet is valid Python
    _verify(_measured_growth(code, _FUNCS[func]) == answer, f"complexity {answer}")
    return question, steps, answer


def _measured_growth(code: str, func_name: str) -> str:
    """Check the claimed complexity by counting passes of the innermost statement at two sizes."""
    counted = code.replace("total = 0", "total = 0\n    passes = 0").replace("return total", "return passes")
    lines = []
    for line in counted.splitlines():
        lines.append(line)
        stripped = line.strip()
        if stripped.startswith("total") and "total = 0" not in stripped:
            lines.append(line[: len(line) - len(line.lstrip())] + "passes += 1")
    namespace: dict = {}
    exec(compile("\n".join(lines), "<synthetic>", "exec"), {"__builtins__": {"range": range}}, namespace)
    function = namespace[func_name]
    # n grows 4x: log n gives ~1.7, n ~4, n log n ~6.7, n^2 ~16-18, n^3 64
    ratio = function(32) / function(8)
    for bound, growth in ((2.5, "O(log n)"), (5, "O(n)"), (10, "O(n log n)"), (30, "O(n^2)")):
        if ratio < bound:
            return growth
    return "O(n^3)"


def _verify(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"synthetic generator produced a wrong answer ({what}); this is a bug in r1tui")


_Template = tuple[str, Callable[[random.Random], Params], Callable[..., Problem]]
_TEMPLATES: dict[str, list[_Template]] = {
    "math": [("linear", _linear_sample, _linear_build), ("quadratic", _quadratic_sample, _quadratic_build),
             ("percent", _percent_sample, _percent_build), ("word", _word_sample, _word_build)],
    "physics": [("kinematics", _kinematics_sample, _kinematics_build), ("trains", _trains_sample, _trains_build),
                ("ohm", _ohm_sample, _ohm_build), ("units", _units_sample, _units_build)],
    "coding": [("program", _program_sample, _program_build), ("complexity", _complexity_sample, _complexity_build)],
}
