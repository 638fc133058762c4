// Mixture geometry for the plots: marginal 2x2 covariances per component from the
// parameters (scikit-learn's shapes by covariance_type), their sigma ellipses, and
// histogram bins.

const MARGINAL = {
  // (K, D, D)
  full: (cov, k, i, j) => [cov[k][i][i], cov[k][i][j], cov[k][j][j]],
  // (D, D), shared by every component
  tied: (cov, _k, i, j) => [cov[i][i], cov[i][j], cov[j][j]],
  // (K, D)
  diag: (cov, k, i, j) => [cov[k][i], 0, cov[k][j]],
  // (K,)
  spherical: (cov, k) => [cov[k], 0, cov[k]],
};

/** Per component, [a, b, c] of the 2x2 covariance [[a, b], [b, c]] of features i, j. */
export function marginalCovariances(parameters, i, j) {
  const pick = MARGINAL[parameters.covariance_type];
  return parameters.weights.map((_, k) => pick(parameters.covariances, k, i, j));
}

/** Points (in data units) on the ellipse at `sigma` standard deviations. */
export function ellipsePoints([mx, my], [a, b, c], sigma, n = 72) {
  const half = (a + c) / 2;
  const root = Math.sqrt(((a - c) / 2) ** 2 + b * b);
  const l1 = Math.max(half + root, 0);
  const l2 = Math.max(half - root, 0);
  const theta = 0.5 * Math.atan2(2 * b, a - c);
  const [r1, r2] = [sigma * Math.sqrt(l1), sigma * Math.sqrt(l2)];
  const [cos, sin] = [Math.cos(theta), Math.sin(theta)];
  const points = [];
  for (let t = 0; t < n; t++) {
    const phi = (2 * Math.PI * t) / n;
    const [u, v] = [r1 * Math.cos(phi), r2 * Math.sin(phi)];
    points.push([mx + u * cos - v * sin, my + u * sin + v * cos]);
  }
  return points;
}

/** Equal-width bins over [lo, hi]: {edges, counts}. */
export function histogram(values, bins, lo, hi) {
  const width = (hi - lo) / bins || 1;
  const counts = new Array(bins).fill(0);
  for (const v of values) {
    const b = Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / width)));
    counts[b] += 1;
  }
  const edges = counts.map((_, b) => lo + b * width);
  edges.push(hi);
  return { edges, counts };
}
