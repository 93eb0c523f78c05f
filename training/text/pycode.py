"""Short Python functions: from the standard library's own sources (PSF licence) and a few
classic exercises written here, as plain code and as chat requests ("def fibonacci(n):",
"Write a Python function that ...")."""
from __future__ import annotations

import ast
import random
import sysconfig
import textwrap
from pathlib import Path

EXERCISES = {
    "fibonacci(n)": ('Return the n-th Fibonacci number.',
                     "a, b = 0, 1\nfor _ in range(n):\n    a, b = b, a + b\nreturn a"),
    "factorial(n)": ("Return n factorial.", "result = 1\nfor i in range(2, n + 1):\n    result *= i\nreturn result"),
    "is_prime(n)": ("Return True if n is a prime number.",
                    "if n < 2:\n    return False\nfor i in range(2, int(n ** 0.5) + 1):\n    if n % i == 0:\n"
                    "        return False\nreturn True"),
    "gcd(a, b)": ("Return the greatest common divisor of a and b.", "while b:\n    a, b = b, a % b\nreturn a"),
    "reverse_string(s)": ("Return the string s reversed.", "return s[::-1]"),
    "is_palindrome(s)": ("Return True if s reads the same backwards.",
                         "s = s.lower().replace(\" \", \"\")\nreturn s == s[::-1]"),
    "sum_list(numbers)": ("Return the sum of a list of numbers.",
                          "total = 0\nfor x in numbers:\n    total += x\nreturn total"),
    "average(numbers)": ("Return the average of a list of numbers.",
                         "if not numbers:\n    return 0.0\nreturn sum(numbers) / len(numbers)"),
    "count_words(text)": ("Count how often each word appears in text.",
                          "counts = {}\nfor word in text.split():\n    counts[word] = counts.get(word, 0) + 1\nreturn counts"),
    "find_max(items)": ("Return the largest item of a list.",
                        "best = items[0]\nfor x in items[1:]:\n    if x > best:\n        best = x\nreturn best"),
    "bubble_sort(items)": ("Sort a list with bubble sort.",
                           "items = list(items)\nfor i in range(len(items)):\n    for j in range(len(items) - 1 - i):\n"
                           "        if items[j] > items[j + 1]:\n            items[j], items[j + 1] = items[j + 1], items[j]\n"
                           "return items"),
    "binary_search(items, target)": ("Return the index of target in the sorted list items, or -1.",
                                     "lo, hi = 0, len(items) - 1\nwhile lo <= hi:\n    mid = (lo + hi) // 2\n"
                                     "    if items[mid] == target:\n        return mid\n    if items[mid] < target:\n"
                                     "        lo = mid + 1\n    else:\n        hi = mid - 1\nreturn -1"),
    "celsius_to_fahrenheit(c)": ("Convert a temperature from Celsius to Fahrenheit.", "return c * 9 / 5 + 32"),
    "count_vowels(s)": ("Count the vowels in a string.", "return sum(1 for ch in s.lower() if ch in \"aeiou\")"),
    "flatten(lists)": ("Flatten a list of lists.", "return [x for sub in lists for x in sub]"),
    "fizzbuzz(n)": ("Print the numbers from 1 to n, with Fizz for multiples of 3 and Buzz for multiples of 5.",
                    "for i in range(1, n + 1):\n    if i % 15 == 0:\n        print(\"FizzBuzz\")\n    elif i % 3 == 0:\n"
                    "        print(\"Fizz\")\n    elif i % 5 == 0:\n        print(\"Buzz\")\n    else:\n        print(i)"),
    "read_lines(path)": ("Return the lines of a text file.",
                         "with open(path, encoding=\"utf-8\") as f:\n    return [line.rstrip(\"\\n\") for line in f]"),
    "unique(items)": ("Return the items without duplicates, keeping their order.",
                      "seen = set()\nout = []\nfor x in items:\n    if x not in seen:\n        seen.add(x)\n"
                      "        out.append(x)\nreturn out"),
    "power(base, exp)": ("Return base raised to the power exp.",
                         "result = 1\nfor _ in range(exp):\n    result *= base\nreturn result"),
    "square_numbers(n)": ("Return the squares of the numbers from 1 to n.", "return [i * i for i in range(1, n + 1)]"),
}


def exercise_source(name: str, doc: bool) -> str:
    desc, body = EXERCISES[name]
    lines = [f"def {name}:"]
    if doc:
        lines.append(f'    """{desc}"""')
    lines += textwrap.indent(body, "    ").splitlines()
    return "\n".join(lines)


def stdlib_functions(max_chars: int = 900) -> list[tuple[str, str, str]]:
    """(signature line, first docstring line, source) of short functions of the stdlib."""
    out = []
    for p in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            src = p.read_text(encoding="utf-8")
            tree = ast.parse(src)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef) or node.name.startswith("__"):
                continue
            seg = ast.get_source_segment(src, node)
            if not seg or not 60 < len(seg) <= max_chars or not 3 <= seg.count("\n") <= 25:
                continue
            seg = textwrap.dedent(" " * node.col_offset + seg)
            doc = (ast.get_docstring(node) or "").strip().split("\n")[0]
            out.append((seg.split("\n")[0], doc, seg))
    return out


CODE_Q = ["Write a Python function that {d}", "Write a function in Python to {d}", "Python: {d}",
          "Write Python code to {d}", "How do I {d} in Python?"]


def code_pairs(rng: random.Random, funcs: list[tuple[str, str, str]], n: int) -> list[tuple[str, str]]:
    """(request, code) pairs: a bare signature -> the whole function, or a described task."""
    out = []
    for _ in range(n):
        if rng.random() < 0.3:
            name = rng.choice(list(EXERCISES))
            src = exercise_source(name, rng.random() < 0.5)
            desc = EXERCISES[name][0]
            sig = f"def {name}:"
        else:
            sig, desc, src = rng.choice(funcs)
        if desc and rng.random() < 0.4:
            d = desc[0].lower() + desc[1:]
            q = rng.choice(CODE_Q).format(d=d.rstrip("."))
        else:
            q = sig
        out.append((q, src))
    return out
