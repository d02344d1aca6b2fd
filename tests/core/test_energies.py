"""Energies are zero (or minimal) at the ground truth and grow with perturbation."""
import pytest
import torch

from dreamor.data.convert import read_motion, with_joints_and_contacts
from dreamor.refine import energies as E


@pytest.fixture(scope="module")
def walk(mocap_dir):
    clip = with_joints_and_contacts(read_motion(mocap_dir / "dataset-2_walk-turn-left_normal_001.bvh"))
    j = torch.tensor(clip.joints, dtype=torch.float64)[None]
    c = torch.tensor(clip.contacts, dtype=torch.float64)[None]
    rest = torch.tensor(clip.rest_joints, dtype=torch.float64)[None]
    return j, c, rest


def _flat_ground():
    return torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64), torch.zeros(1, dtype=torch.float64)


def test_observation_ignores_occluded_joints(walk):
    j, _, _ = walk
    vis = torch.ones(j.shape[:-1], dtype=torch.bool)
    assert float(E.observation(j, j, vis)[0]) == 0.0
    noisy = j + 0.05
    assert float(E.observation(j, noisy, vis)[0]) > 0
    vis[..., 4] = False
    garbage = j.clone()
    garbage[..., 4, :] = float("nan")  # occluded input may be garbage: it must not leak
    e, _ = E.observation(j, garbage, vis)
    assert torch.isfinite(e) and float(e) == 0.0


def test_observation_is_robust(walk):
    j, _, _ = walk
    vis = torch.ones(j.shape[:-1], dtype=torch.bool)
    small = float(E.observation(j, j + 0.01, vis, sigma=0.1)[0])
    huge = float(E.observation(j, j + 10.0, vis, sigma=0.1)[0])
    assert small < huge <= 0.1**2 + 1e-12  # bounded by sigma^2


def test_regularisers_grow_with_perturbation(walk):
    j, c, rest = walk
    g = torch.Generator().manual_seed(0)
    shaky = j + 0.02 * torch.randn(j.shape, generator=g, dtype=torch.float64)
    assert float(E.smoothness(shaky)[0]) > 10 * float(E.smoothness(j)[0])
    assert float(E.bone_length(j, rest)[0]) < 1e-6
    assert float(E.bone_length(shaky, rest)[0]) > 1e-5
    assert float(E.contact_velocity(shaky, c)[0]) > 5 * float(E.contact_velocity(j, c)[0])
    ground = _flat_ground()
    assert float(E.contact_height(j, c, ground)[0]) == 0.0  # labels hold at the ground truth
    sunk = j.clone()
    sunk[..., 2] -= 0.1
    assert float(E.penetration(sunk, ground)[0]) > 100 * float(E.penetration(j, ground)[0]) + 1e-6
    lifted = j.clone()
    lifted[..., 2] += 0.1
    assert float(E.contact_height(lifted, c, ground)[0]) > 1e-3


def test_a_windows_energies_do_not_depend_on_the_other_windows_in_its_batch(walk):
    """Every term is a mean within each window, summed over windows: window 0's gradients are the same alone as
    beside a window with other masks and contacts (``refine.reuse`` re-optimises windows in other batches)."""
    j, _, _ = walk
    torch.manual_seed(0)
    j0 = j + 0.01 * torch.randn_like(j)
    other = j.flip(1) + 0.02
    vis0 = torch.rand(j.shape[:3]) > 0.3
    vis1 = torch.rand(j.shape[:3]) > 0.8
    c0, c1 = torch.rand(1, j.shape[1], 9, dtype=j.dtype), torch.rand(1, j.shape[1], 9, dtype=j.dtype)

    def grads(joints, vis, c):
        joints = joints.clone().requires_grad_(True)
        b = len(joints)
        ground = (_flat_ground()[0].expand(b, 3), _flat_ground()[1].expand(b))
        total = sum(e for e, _ in (E.observation(joints, j.expand_as(joints), vis), E.smoothness(joints),
                                   E.contact_velocity(joints, c), E.contact_height(joints, c, ground),
                                   E.penetration(joints, ground), E.skeleton_consistency(joints, j.expand_as(joints))))
        (g,) = torch.autograd.grad(total, joints)
        return g[0]

    alone = grads(j0, vis0, c0)
    beside = grads(torch.cat([j0, other]), torch.cat([vis0, vis1]), torch.cat([c0, c1]))
    assert alone.abs().max() > 0 and torch.allclose(alone, beside, atol=1e-12)


def test_sds_and_consistency():
    z = torch.randn(2, 5, 8, requires_grad=True)
    target = z.detach() + 1.0
    e, terms = E.sds(z, target)
    assert terms["sds"] == pytest.approx(8.0)
    e.backward()
    assert torch.allclose(z.grad, -2.0 * torch.ones_like(z) / 5)  # a mean within each window, summed over windows
    j = torch.randn(1, 3, 22, 3)
    assert float(E.skeleton_consistency(j, j)[0]) == 0.0
    assert float(E.skeleton_consistency(j, j + 0.1)[0]) == pytest.approx(0.03)


def test_tilted_ground_heights():
    n = torch.tensor([[0.0, 0.6, 0.8]])
    p = torch.tensor([[[[0.0, 1.0, 1.0]]]])
    assert float(E.heights(p, (n, torch.tensor([0.4])))) == pytest.approx(1.0)


def _descend(energy, x: torch.Tensor, steps: int = 50, lr: float = 0.1) -> torch.Tensor:
    """x after plain gradient descent on energy(x)."""
    x = x.clone().requires_grad_(True)
    for _ in range(steps):
        (g,) = torch.autograd.grad(energy(x), x)
        x = (x - lr * g).detach().requires_grad_(True)
    return x.detach()


def test_guess_pulls_only_the_guessed_joints_towards_the_guess():
    joints = torch.zeros(1, 4, 22, 3, dtype=torch.float64)
    target = torch.full_like(joints, 0.3)
    guessed = torch.zeros(1, 4, 22, dtype=torch.bool)
    guessed[..., 4] = True
    e, terms = E.guess(joints, target, guessed)
    assert "guess" in terms and float(e) > 0
    moved = _descend(lambda x: E.guess(x, target, guessed)[0], joints, lr=1.0)
    assert (moved[..., 4, :] - 0.3).abs().max() < (joints[..., 4, :] - 0.3).abs().max()  # towards the guess
    assert torch.equal(moved[..., 5, :], joints[..., 5, :])  # other joints untouched


def test_window_agreement_pulls_shared_frames_together():
    from dreamor.refine.windows import overlap_pairs

    starts, length = [0, 6], 10  # frames 6..9 are in both windows
    joints = torch.zeros(2, length, 22, 3, dtype=torch.float64)
    joints[1] += 0.1  # the second window disagrees everywhere
    pairs = overlap_pairs(starts, length)
    e0 = float(E.window_agreement(joints, pairs)[0])
    assert e0 == pytest.approx(3 * 0.1**2)
    moved = _descend(lambda x: E.window_agreement(x, pairs)[0], joints, lr=5.0)
    assert float(E.window_agreement(moved, pairs)[0]) < 0.1 * e0
    assert torch.equal(moved[1, 4:], joints[1, 4:])  # frames only the second window has are not compared
    # a neighbour optimised earlier: its joints are fixed targets for the frames it shares (hidden joints only)
    targets = torch.zeros(1, length, 22, 3, dtype=torch.float64)
    mask = torch.zeros(1, length, 22, dtype=torch.bool)
    mask[0, :4, :5] = True
    one = joints[1:]
    e1 = float(E.window_agreement(one, None, (targets, mask))[0])
    assert e1 == pytest.approx(3 * 0.1**2)
    pulled = _descend(lambda x: E.window_agreement(x, None, (targets, mask))[0], one, lr=5.0)
    assert float(E.window_agreement(pulled, None, (targets, mask))[0]) < 0.1 * e1
    assert torch.equal(pulled[0, :4, 5:], one[0, :4, 5:]) and torch.equal(pulled[0, 4:], one[0, 4:])


def test_prior_nll_pulls_latents_to_the_prior_mean():
    mu, logvar = torch.full((1, 3, 4), 0.5, dtype=torch.float64), torch.zeros(1, 3, 4, dtype=torch.float64)
    z = torch.zeros_like(mu)
    moved = _descend(lambda x: E.prior_nll(x, mu, logvar)[0], z, lr=1.0)
    assert float(E.prior_nll(moved, mu, logvar)[0]) < float(E.prior_nll(z, mu, logvar)[0])
    assert (moved - 0.5).abs().max() < 0.5


def _toy_energies(walk):
    """name -> (energy(joints) -> scalar, the perturbed start, how far it is from what the term wants)."""
    j, c, rest = walk
    g = torch.Generator().manual_seed(1)
    shaky = j + 0.02 * torch.randn(j.shape, generator=g, dtype=torch.float64)
    vis = torch.ones(j.shape[:-1], dtype=torch.bool)
    ground = _flat_ground()
    sunk = j.clone()
    sunk[..., 2] -= 0.05
    lifted = j.clone()
    lifted[..., 2] += 0.05

    def off_truth(x):
        return float((x - j).norm(dim=-1).mean())

    def below(x):
        return float(torch.clamp(-E.heights(x, ground), min=0).sum())

    return {
        "observation": (lambda x: E.observation(x, j, vis)[0], shaky, off_truth),
        "consistency": (lambda x: E.skeleton_consistency(x, j)[0], shaky, off_truth),
        "smoothness": (lambda x: E.smoothness(x)[0], shaky, lambda x: float(E.smoothness(x)[0])),
        "bone_length": (lambda x: E.bone_length(x, rest)[0], shaky, lambda x: float(E.bone_length(x, rest)[0])),
        "contact_velocity": (lambda x: E.contact_velocity(x, c)[0], shaky, lambda x: float(E.contact_velocity(x, c)[0])),
        "contact_height": (lambda x: E.contact_height(x, c, ground)[0], lifted,
                           lambda x: float(E.contact_height(x, c, ground)[0])),
        "penetration": (lambda x: E.penetration(x, ground)[0], sunk, below),
    }


@pytest.mark.parametrize("name", ["observation", "consistency", "smoothness", "bone_length", "contact_velocity",
                                  "contact_height", "penetration"])
def test_each_energys_gradient_moves_the_motion_the_right_way(walk, name):
    """A few plain gradient steps on one term alone bring a perturbed toy motion back towards what the term asks for."""
    energy, start, distance = _toy_energies(walk)[name]
    e0 = float(energy(start))
    x = start.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(energy(x), x)
    assert torch.isfinite(g).all() and float(g.abs().max()) > 0
    lr = 0.5 * e0 / float((g * g).sum())  # a step that would halve the energy if it were linear
    moved = (start - lr * g).detach()
    assert float(energy(moved)) < e0
    assert distance(moved) < distance(start)
