"""The hand-worked EM epoch of ../shared/seeds/gmm-em-worked-example.md.

The seed prints variances under the name "sigma"; its figures carry three
decimals in the responsibilities, so they are matched to 1e-3.
"""

import numpy as np
import pytest

from service.gmm import estimate_parameters
from service.gmm.kernels import log_resp_normalize

X = np.array([[0.9], [0.7], [1.2], [2.4], [1.8]])
G1 = np.array([0.398, 0.390, 0.395, 0.244, 0.340])
G2 = np.array([0.295, 0.261, 0.340, 0.383, 0.395])
BETA1 = np.array([0.574, 0.599, 0.537, 0.389, 0.463])
BETA2 = np.array([0.426, 0.401, 0.463, 0.611, 0.537])


def test_e_step_turns_the_seed_densities_into_its_responsibilities():
    weighted_log_prob = np.log(0.5 * np.vstack([G1, G2]))
    _, responsibilities = log_resp_normalize(weighted_log_prob)
    np.testing.assert_allclose(responsibilities, np.vstack([BETA1, BETA2]), atol=1e-3)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_m_step_from_the_seed_responsibilities_gives_its_parameters(covariance_type):
    parameters = estimate_parameters(
        X, np.column_stack([BETA1, BETA2]), covariance_type=covariance_type, reg_covar=0.0
    )
    np.testing.assert_allclose(
        parameters.means[:, 0], [1.3065753725700628, 1.4982149218892322], atol=1e-3
    )
    np.testing.assert_allclose(
        np.ravel(parameters.covariances), [0.3510142879511143, 0.408060269961259], atol=1e-3
    )
    np.testing.assert_allclose(
        parameters.weights, [0.5124981885949778, 0.48750181140502213], atol=1e-3
    )
