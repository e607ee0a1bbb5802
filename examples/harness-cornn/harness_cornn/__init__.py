"""coRNN (Rusch & Mishra 2021, "Coupled Oscillatory Recurrent Neural Network (coRNN): An accurate
and (gradient) stable architecture for learning long time dependencies", ICLR 2021) as a harness
cell plugin.

A network of coupled, damped, driven oscillators, y'' = tanh(W y + W_z y' + V u + b) - gamma y -
eps y', discretised with the IMEX scheme of the paper (its equation 3). The update, in the order
of the authors' code (tk-rusch/coRNN, psMNIST/network.py and adding/model.py, coRNNCell.forward)::

    z_n = z_{n-1} + dt * (tanh(W y_{n-1} + W_z z_{n-1} + V u_n + b) - gamma * y_{n-1} - eps * z_{n-1})
    y_n = y_{n-1} + dt * z_n                 # the NEW z_n
    readout sees y_n

The authors keep one ``nn.Linear(n_inp + 2 n_hid, n_hid)`` (``i2h``) applied to cat(u, z, y): its
weight is [V, W_z, W] (columns in that order) and its bias b. Here the blocks are separate
parameters with the same default draws, U(-1/sqrt(I + 2H), 1/sqrt(I + 2H)) each (nn.Linear's
default for fan-in I + 2H, weight and bias). dt, gamma and eps are fixed hyperparameters, not
trained; the defaults are the authors' adding-problem ones (adding/adding_task.py: dt = 0.06,
gamma = 66, eps = 15). Subclass the cell with other values (and another name) for other settings,
e.g. their psMNIST ones, dt = 0.076, gamma = 0.4, eps = 8 (:class:`CoRNNpsMNIST`).
"""
from __future__ import annotations

import math

import numpy as np

from harness.cell import Cell, ParamSpec, StateSpec, uniform
from harness.hookspecs import hookimpl

HARNESS_PLUGIN_API = 3  # the plugin-API version this plugin was written for


def _bound(input_size: int, hidden_size: int) -> float:
    return 1.0 / math.sqrt(input_size + 2 * hidden_size)


#: nn.Linear(I + 2H, H)'s default draw, weight and bias alike: U(-1/sqrt(I + 2H), 1/sqrt(I + 2H)).
i2h_uniform = uniform(lambda i, h: -_bound(i, h), _bound, "U(-1/sqrt(I + 2H), 1/sqrt(I + 2H))")


class CoRNN(Cell):
    name = "cornn"
    description = ("coRNN: z = z + dt (tanh(W y + W_z z + V u + b) - gamma y - eps z), y = y + dt z (new z); "
                   "readout y; dt 0.06, gamma 66, eps 15")
    reference = ("Rusch & Mishra 2021, 'Coupled Oscillatory Recurrent Neural Network (coRNN)', ICLR 2021; "
                 "github.com/tk-rusch/coRNN")
    params = (
        ParamSpec("V", lambda i, h: (h, i), i2h_uniform),  # input -> oscillators (i2h.weight[:, :I])
        ParamSpec("W_z", lambda i, h: (h, h), i2h_uniform),  # velocities z (i2h.weight[:, I:I+H])
        ParamSpec("W", lambda i, h: (h, h), i2h_uniform),  # positions y (i2h.weight[:, I+H:])
        ParamSpec("b", lambda i, h: (h,), i2h_uniform),  # i2h.bias
    )
    state = (StateSpec("y"), StateSpec("z"))  # hy, hz in the authors' code; both start at 0
    output = "y"
    gate_names = ("y", "z")  # recurrent_matrix: [W; W_z], the weights on y and on z
    stored_per_step = 3  # y, z and the tanh of each step
    dt: float = 0.06
    gamma: float = 66.0
    epsilon: float = 15.0

    def step(self, p, state, x):
        y, z = state["y"], state["z"]
        drive = (x @ p["V"].T + z @ p["W_z"].T + y @ p["W"].T + p["b"]).tanh()
        z_new = z + self.dt * (drive - self.gamma * y - self.epsilon * z)
        y_new = y + self.dt * z_new
        return {"y": y_new, "z": z_new}

    def recurrent_matrix(self, params):
        return np.concatenate([params["W"], params["W_z"]], axis=0)

    def oscillator_jacobian(self) -> np.ndarray:
        """d(y_n, z_n) / d(y_{n-1}, z_{n-1}) for one oscillator when the drive is constant (W = W_z = 0),
        the 2 x 2 matrix of the damped linear oscillator the scheme integrates."""
        dt, g, e = self.dt, self.gamma, self.epsilon
        return np.array([[1 - dt * dt * g, dt * (1 - dt * e)],
                         [-dt * g, 1 - dt * e]])


class CoRNNpsMNIST(CoRNN):
    """The authors' psMNIST setting (psMNIST/psMNIST_task.py): dt = 0.076, gamma = 0.4, eps = 8."""

    name = "cornn_psmnist"
    description = "coRNN with the authors' psMNIST hyperparameters: dt 0.076, gamma 0.4, eps 8"
    dt = 0.076
    gamma = 0.4
    epsilon = 8.0


@hookimpl
def harness_cells():
    return [CoRNN, CoRNNpsMNIST]
