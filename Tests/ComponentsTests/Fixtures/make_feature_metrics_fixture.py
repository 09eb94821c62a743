"""Expected values of FeatureMetricsTests.matchesScipyAndBruteForce: the Frechet distance with
scipy.linalg.sqrtm (as pytorch-fid computes it), KID's unbiased MMD^2 with the cubic kernel,
and k-NN precision/recall by brute force, on deterministic data the test rebuilds.

    python3 Tests/ComponentsTests/Fixtures/make_feature_metrics_fixture.py
"""
import numpy as np
from scipy import linalg

n, m, d, k = 40, 30, 5, 3
x = np.array([[np.sin(1.3 * i + 0.7 * j) + 0.1 * j for j in range(d)] for i in range(n)])
y = np.array([[1.2 * np.sin(1.1 * i + 0.7 * j + 0.5) + 0.1 * j + 0.2 for j in range(d)] for i in range(m)])

mx, my = x.mean(0), y.mean(0)
cx, cy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
root = linalg.sqrtm(cx @ cy)
fd = ((mx - my) ** 2).sum() + np.trace(cx) + np.trace(cy) - 2 * np.trace(root.real)

def kern(a, b): return (a @ b.T / d + 1) ** 3
kxx, kyy, kxy = kern(x, x), kern(y, y), kern(x, y)
kid = (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()

def d2(a, b): return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
def radii(a):
    g = d2(a, a); np.fill_diagonal(g, np.inf); return np.sort(g, 1)[:, k - 1]
precision = np.mean([(d2(x, y[j:j + 1])[:, 0] <= radii(x)).any() for j in range(m)])
recall = np.mean([(d2(y, x[i:i + 1])[:, 0] <= radii(y)).any() for i in range(n)])
print(f"fd {fd:.12g}\nkid {kid:.12g}\nprecision {precision:.12g}\nrecall {recall:.12g}")
