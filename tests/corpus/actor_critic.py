"""The actor-critic example's shape on a small corridor world written in Python: one shared Linear
body with an action head (softmax) and a value head, SavedAction namedtuples of (log_prob,
value), Categorical sampling, discounted returns normalised by mean and std, the advantage
R - value.item(), F.smooth_l1_loss(value, torch.tensor([R])) for the critic, and
torch.stack(policy_losses).sum() + torch.stack(value_losses).sum() as one loss. The compared
run draws actions with NumPy from the policy's probabilities (sample=False)."""

from collections import namedtuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.distributions import Categorical

SavedAction = namedtuple("SavedAction", ["log_prob", "value"])
gamma = 0.9
eps = np.finfo(np.float32).eps.item()


class Corridor:
    """Positions 0..size-1, start in the middle; action 1 steps right, 0 left; reward 1 at the
    right end (the episode ends), -0.05 a step otherwise, at most max_steps steps."""

    def __init__(self, size=7, max_steps=20):
        self.size, self.max_steps = size, max_steps

    def reset(self):
        self.pos, self.t = self.size // 2, 0
        return self.observe()

    def observe(self):
        obs = np.zeros(self.size, np.float32)
        obs[self.pos] = 1.0
        return obs

    def step(self, action):
        self.pos = min(max(self.pos + (1 if action == 1 else -1), 0), self.size - 1)
        self.t += 1
        if self.pos == self.size - 1:
            return self.observe(), 1.0, True
        return self.observe(), -0.05, self.t >= self.max_steps


class Policy(nn.Module):
    """implements both actor and critic in one model"""

    def __init__(self, n_obs=7, n_actions=2, hidden=32):
        super(Policy, self).__init__()
        self.affine1 = nn.Linear(n_obs, hidden)
        self.action_head = nn.Linear(hidden, n_actions)
        self.value_head = nn.Linear(hidden, 1)
        self.saved_actions = []
        self.rewards = []

    def forward(self, x):
        x = F.relu(self.affine1(x))
        action_prob = F.softmax(self.action_head(x), dim=-1)
        state_values = self.value_head(x)
        return action_prob, state_values


def select_action(model, state, rng=None):
    state = torch.from_numpy(state).float()
    probs, state_value = model(state)
    m = Categorical(probs)
    if rng is None:
        action = m.sample()
    else:
        cdf = np.cumsum(probs.detach().numpy())
        action = torch.tensor(min(int(np.searchsorted(cdf, rng.random())), len(cdf) - 1))
    model.saved_actions.append(SavedAction(m.log_prob(action), state_value))
    return action.item()


def finish_episode(model, optimizer):
    R = 0
    saved_actions = model.saved_actions
    policy_losses = []
    value_losses = []
    returns = []
    for r in model.rewards[::-1]:
        R = r + gamma * R
        returns.insert(0, R)
    returns = torch.tensor(returns)
    if len(returns) > 1:
        returns = (returns - returns.mean()) / (returns.std() + eps)
    for (log_prob, value), R in zip(saved_actions, returns):
        advantage = R - value.item()
        policy_losses.append(-log_prob * advantage)
        value_losses.append(F.smooth_l1_loss(value, torch.tensor([R])))
    optimizer.zero_grad()
    loss = torch.stack(policy_losses).sum() + torch.stack(value_losses).sum()
    loss.backward()
    optimizer.step()
    del model.rewards[:]
    del model.saved_actions[:]
    return loss.item()


def build_model():
    torch.manual_seed(543)
    return Policy()


def train(model, steps=5, sample=False, lr=3e-2):
    optimizer = optim.Adam(model.parameters(), lr=lr)
    env = Corridor()
    rng = None if sample else np.random.default_rng(3)
    losses, rewards = [], []
    for _ in range(steps):
        state, ep_reward = env.reset(), 0.0
        done = False
        while not done:
            action = select_action(model, state, rng)
            state, reward, done = env.step(action)
            model.rewards.append(reward)
            ep_reward += reward
        rewards.append(ep_reward)
        losses.append(finish_episode(model, optimizer))
    train.rewards = rewards
    return losses, {name: p.grad for name, p in model.named_parameters()}


def main():
    model = build_model()
    losses, _ = train(model, 40, sample=True)
    rewards = train.rewards
    print(f"episode reward {rewards[0]:.2f} -> {np.mean(rewards[-5:]):.2f}")
    return losses


if __name__ == "__main__":
    main()
