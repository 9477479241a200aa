#!/usr/bin/env python3
"""Reference values for dermis-experiments' statistics tests, computed independently of the Rust
code with Python's standard library only (math, statistics.NormalDist): per-unit data where the
Rust tests use sums, explicit formulas where they use closed forms.

Run: python3 crates/experiments/reference/values.py
"""
import math
import statistics
from statistics import NormalDist

N = NormalDist()


def delta_relative(yc, yv):
    """Relative uplift mean_v/mean_c - 1 and its delta-method standard error from unit data."""
    mc, mv = statistics.fmean(yc), statistics.fmean(yv)
    vc, vv = statistics.variance(yc), statistics.variance(yv)
    var = vv / (len(yv) * mc**2) + mv**2 * vc / (len(yc) * mc**4)
    return mv / mc - 1, math.sqrt(var)


print("== binomial uplift: 100/1000 vs 120/1000, 95%")
yc = [1] * 100 + [0] * 900
yv = [1] * 120 + [0] * 880
rel, se = delta_relative(yc, yv)
z = N.inv_cdf(0.975)
print("relative", repr(rel), "se", repr(se))
print("ci", repr(rel - z * se), repr(rel + z * se))
print("p", repr(2 * N.cdf(-abs(rel) / se)))

print("== continuous uplift")
c = [10.0, 0.0, 5.0, 0.0, 25.0, 0.0, 0.0, 12.0]
v = [15.0, 0.0, 8.0, 30.0, 0.0, 0.0, 20.0, 0.0, 9.0]
rel, se = delta_relative(c, v)
print("relative", repr(rel), "se", repr(se))

print("== bayesian, flat prior, on the binomial uplift")
rel, se = delta_relative(yc, yv)
post = NormalDist(rel, se)
print("chance_to_win", repr(1 - post.cdf(0)))
# Expected loss E[max(0, -d)] by numerical integration (independent of the closed form).
steps = 200000
lo, hi = rel - 12 * se, 0.0
h = (hi - lo) / steps
loss = sum((-(lo + (i + 0.5) * h)) * post.pdf(lo + (i + 0.5) * h) for i in range(steps)) * h
print("expected_loss (midpoint rule)", repr(loss))

print("== SRM")
for obs, w in [([5000, 5400], [0.5, 0.5]), ([5000, 5050], [0.5, 0.5]), ([5000, 5300], [0.5, 0.5])]:
    tot = sum(obs)
    x = sum((o - tot * wi) ** 2 / (tot * wi) for o, wi in zip(obs, w))
    print(obs, "chi2", repr(x), "p (1 df: erfc(sqrt(x/2)))", repr(math.erfc(math.sqrt(x / 2))))

print("== sequential half width, gbstats' formula: s2=4, n=2000, tuning=5000, alpha=0.05")
alpha, tuning, s2, n = 0.05, 5000, 4.0, 2000
rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning)
hw = math.sqrt(s2) * math.sqrt((2 * (n * rho**2 + 1)) / (n**2 * rho**2) * math.log(math.sqrt(n * rho**2 + 1) / alpha))
print("half width", repr(hw))

print("== CUPED example (tests/stats_reference.rs)")
# Pre-period spend x and period spend y of 12 units per arm; the variant adds 2 to y.
xc = [10, 0, 5, 20, 8, 0, 15, 3, 12, 7, 0, 25]
ec = [1, -2, 0, 3, -1, 1, 2, -3, 0, 1, -1, 2]
xv = [9, 2, 6, 18, 11, 0, 14, 4, 10, 6, 1, 22]
ev = [-1, 2, 1, -2, 0, 1, -1, 3, 0, -2, 1, 0]
yc = [5 + 0.8 * x + e for x, e in zip(xc, ec)]
yv = [7 + 0.8 * x + e for x, e in zip(xv, ev)]
print("control sums", len(xc), sum(xc), sum(x * x for x in xc), sum(yc), sum(y * y for y in yc), sum(x * y for x, y in zip(xc, yc)))
print("variant sums", len(xv), sum(xv), sum(x * x for x in xv), sum(yv), sum(y * y for y in yv), sum(x * y for x, y in zip(xv, yv)))
# theta pooled within arms: ordinary least squares of y on x with an arm indicator.
def sxy(a, b):
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    return sum((p - ma) * (q - mb) for p, q in zip(a, b))
theta = (sxy(xc, yc) + sxy(xv, yv)) / (sxy(xc, xc) + sxy(xv, xv))
print("theta", repr(theta))
xbar = statistics.fmean(xc + xv)
adj_c = [y - theta * (x - xbar) for x, y in zip(xc, yc)]
adj_v = [y - theta * (x - xbar) for x, y in zip(xv, yv)]
mc = statistics.fmean(yc)
d = statistics.fmean(adj_v) - statistics.fmean(adj_c)
# Delta method for D / M with D = mean(adj_v) - mean(adj_c), M = mean(y_c), Cov(D, M) = -cov(adj_c, y_c)/n_c.
n_c, n_v = len(yc), len(yv)
var_d = statistics.variance(adj_c) / n_c + statistics.variance(adj_v) / n_v
var_m = statistics.variance(yc) / n_c
cov_dm = -statistics.covariance(adj_c, yc) / n_c
var = var_d / mc**2 + d**2 * var_m / mc**4 - 2 * d * cov_dm / mc**3
print("adjusted means", repr(statistics.fmean(adj_c)), repr(statistics.fmean(adj_v)))
print("cuped relative", repr(d / mc), "se", repr(math.sqrt(var)))
rel, se = delta_relative(yc, yv)
print("unadjusted relative", repr(rel), "se", repr(se))
print("variance reduction", repr(1 - var / se**2))
