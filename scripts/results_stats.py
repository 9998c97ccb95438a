"""The statistics of docs/results.md, in one place: Welch's interval for a difference of two
variants' means over seeds, and the verdict rule that docs/preregistration-glyphs.md fixes.
Standard library only (scripts/results-md imports it; tests/docs/test_results_stats.py tests it).
"""
import math
import statistics


def _betacf(a, b, x):
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a, b, x):
    """I_x(a, b), the regularised incomplete beta function, for 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t, df):
    """Student's t distribution's CDF with df > 0 degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p, df):
    """The p-quantile (0.5 < p < 1) of Student's t with df degrees of freedom (bisection)."""
    if math.isinf(df):
        df = 1e12
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        low, high = (mid, high) if t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2.0


def welch(a, b, level=0.95):
    """(difference of means, low, high, degrees of freedom) of Welch's interval for mean(a) - mean(b),
    a and b lists of per-seed values (at least two each)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's interval needs two values on each side, got {len(a)} and {len(b)}")
    d = statistics.mean(a) - statistics.mean(b)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:
        return d, d, d, math.inf
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = t_quantile(0.5 + level / 2.0, df) * se
    return d, d - half, d + half, df


def one_sample(values, level=0.95):
    """(mean, low, high) of the t interval for the mean of `values` (at least two): for paired
    differences, such as a gate's gain over its own model's mean."""
    if len(values) < 2:
        raise ValueError(f"a t interval needs two values, got {len(values)}")
    m = statistics.mean(values)
    half = t_quantile(0.5 + level / 2.0, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return m, m - half, m + half


def verdict(low, high):
    """The pre-registered rule: supported when the interval lies above 0 (the paper's direction),
    contradicted when it lies below 0, not shown otherwise."""
    if low > 0:
        return "supported"
    if high < 0:
        return "contradicted"
    return "not shown"


def cell(a, b):
    """'supported: +1.20 [+0.30, +2.10]': the rule's verdict on mean(a) - mean(b), in points."""
    d, low, high, _ = welch(a, b)
    return f"{verdict(low, high)}: {100 * d:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]"


def pct(x):
    """A fraction as percent with two decimals."""
    return f"{100 * x:.2f}"


def mean_sd(values):
    """'mean ± std' in percent over seeds ('-' for the std of one value)."""
    return f"{pct(statistics.mean(values))} ± {pct(statistics.stdev(values)) if len(values) > 1 else '-'}"


BASIC_BLOCKS = ("resnet10", "resnet18", "resnet34")  # expansion 1; the others are bottleneck (4)


def feature_channels(model):
    """Channels of the final feature map of a summary's "model" record (what the head splits)."""
    return model["width"] * 8 * (1 if model["arch"] in BASIC_BLOCKS else 4)
