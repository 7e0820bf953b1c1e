"""The REINFORCE example's shape on a small cart-pole simulation written in NumPy: a Policy with
Linear, Dropout, ReLU and softmax, torch.distributions.Categorical for the action and its
log_prob, discounted returns normalised as (returns - returns.mean()) / (returns.std() + eps)
with eps = np.finfo(np.float32).eps.item(), the loss torch.cat(policy_loss).sum(), and the
running reward. The compared run draws actions with NumPy from the policy's probabilities
(sample=False), so torch and fastnn take the same actions."""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.distributions import Categorical

device = torch.device("cpu")
gamma = 0.99
eps = np.finfo(np.float32).eps.item()


class CartPole:
    """The classic cart-pole dynamics (Euler steps), at most max_steps steps an episode."""

    def __init__(self, seed, max_steps=40):
        self.rng = np.random.default_rng(seed)
        self.max_steps = max_steps

    def reset(self):
        self.state = self.rng.uniform(-0.05, 0.05, size=4)
        self.t = 0
        return self.state.copy()

    def step(self, action):
        x, x_dot, theta, theta_dot = self.state
        force = 10.0 if action == 1 else -10.0
        costheta, sintheta = math.cos(theta), math.sin(theta)
        temp = (force + 0.05 * theta_dot**2 * sintheta) / 1.1
        thetaacc = (9.8 * sintheta - costheta * temp) / (0.5 * (4.0 / 3.0 - 0.1 * costheta**2 / 1.1))
        xacc = temp - 0.05 * thetaacc * costheta / 1.1
        x, x_dot = x + 0.02 * x_dot, x_dot + 0.02 * xacc
        theta, theta_dot = theta + 0.02 * theta_dot, theta_dot + 0.02 * thetaacc
        self.state = np.array([x, x_dot, theta, theta_dot])
        self.t += 1
        done = bool(abs(x) > 2.4 or abs(theta) > 12 * 2 * math.pi / 360 or self.t >= self.max_steps)
        return self.state.copy(), 1.0, done


class Policy(nn.Module):
    def __init__(self, dropout=0.6):
        super(Policy, self).__init__()
        self.affine1 = nn.Linear(4, 32)
        self.dropout = nn.Dropout(p=dropout)
        self.affine2 = nn.Linear(32, 2)

        self.saved_log_probs = []
        self.rewards = []

    def forward(self, x):
        x = self.affine1(x)
        x = self.dropout(x)
        x = F.relu(x)
        action_scores = self.affine2(x)
        return F.softmax(action_scores, dim=1)


def select_action(policy, state, rng=None):
    state = torch.from_numpy(state).float().unsqueeze(0)
    probs = policy(state)
    m = Categorical(probs)
    if rng is None:
        action = m.sample()
    else:  # the same draw in every framework: inverse CDF of a NumPy uniform
        cdf = np.cumsum(probs.detach().numpy()[0])
        action = torch.tensor([min(int(np.searchsorted(cdf, rng.random())), len(cdf) - 1)])
    policy.saved_log_probs.append(m.log_prob(action))
    return action.item()


def finish_episode(policy, optimizer):
    R = 0
    policy_loss = []
    returns = []
    for r in policy.rewards[::-1]:
        R = r + gamma * R
        returns.insert(0, R)
    returns = torch.tensor(returns)
    returns = (returns - returns.mean()) / (returns.std() + eps)
    for log_prob, R in zip(policy.saved_log_probs, returns):
        policy_loss.append(-log_prob * R)
    optimizer.zero_grad()
    policy_loss = torch.cat(policy_loss).sum()
    policy_loss.backward()
    optimizer.step()
    del policy.rewards[:]
    del policy.saved_log_probs[:]
    return policy_loss.item()


def build_model(dropout=0.6):
    torch.manual_seed(543)
    return Policy(dropout)


def train(model, steps=5, sample=False, lr=1e-2):
    """steps episodes; returns the per-episode losses (the episode length is in the log)."""
    policy = model
    optimizer = optim.Adam(policy.parameters(), lr=lr)
    env = CartPole(seed=543)
    rng = None if sample else np.random.default_rng(7)
    losses, lengths = [], []
    for _ in range(steps):
        state, ep_reward = env.reset(), 0
        t, done = 0, False
        while not done:
            action = select_action(policy, state, rng)
            state, reward, done = env.step(action)
            policy.rewards.append(reward)
            ep_reward += reward
            t += 1
        lengths.append(t)
        losses.append(finish_episode(policy, optimizer))
    train.lengths = lengths
    return losses, {name: p.grad for name, p in policy.named_parameters()}


def main():
    policy = build_model()
    losses, _ = train(policy, 30, sample=True)
    lengths = train.lengths
    running_reward = 10
    for ep_reward in lengths:
        running_reward = 0.05 * ep_reward + (1 - 0.05) * running_reward
    print(f"Last length: {lengths[-1]:5d}\tAverage reward: {running_reward:.2f}")
    return losses


if __name__ == "__main__":
    main()
