"""scipy's unconstrained L-BFGS-B, transcribed to torch so the probe stops where scikit-learn stops.

With DinoBloom's C the probe's optimum is flat, and scikit-learn stops at max|grad| <= 1e-4
(or after max_iter iterations) well short of it; any other optimiser stops somewhere else.
So :func:`lbfgs` replays L-BFGS-B as scikit-learn calls it (m=10 corrections, More-Thuente
line search with ftol=1e-3/gtol=0.9/xtol=0.1, maxls=50, first step 1/||g||, pgtol=tol,
factr=64, the same skip and restart rules).  The line search is a transcription of
MINPACK-2 dcsrch/dcstep as scipy's L-BFGS-B uses them; numpy float64 scalars keep C's
inf/nan semantics.
"""

from __future__ import annotations

import numpy as np
import torch

MAX_ITER = 1000
TOL = 1e-4  # scikit-learn's default: stop when max |gradient| <= tol
EPS64 = float(np.finfo(np.float64).eps)



def _dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stpmin, stpmax):
    """One safeguarded cubic/quadratic step; returns the updated interval and the new step."""
    sgnd = dp * (dx / np.abs(dx))

    def cubic(s0, f0, d0, s1, f1, d1, clip=False):  # (theta, |gamma|) of the interpolating cubic
        theta = 3.0 * (f0 - f1) / (s1 - s0) + d0 + d1
        s = np.fmax(np.abs(theta), np.fmax(np.abs(d0), np.abs(d1)))
        disc = (theta / s) ** 2 - (d0 / s) * (d1 / s)
        return theta, s * np.sqrt(np.fmax(0.0, disc) if clip else disc)

    if fp > fx:  # higher value: minimum bracketed
        theta, gamma = cubic(stx, fx, dx, stp, fp, dp)
        gamma = -gamma if stp < stx else gamma
        r = ((gamma - dx) + theta) / (((gamma - dx) + gamma) + dp)
        stpc = stx + r * (stp - stx)
        stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
        stpf = stpc if np.abs(stpc - stx) < np.abs(stpq - stx) else stpc + (stpq - stpc) / 2.0
        brackt = True
    elif sgnd < 0.0:  # lower value, derivatives of opposite sign: bracketed
        theta, gamma = cubic(stx, fx, dx, stp, fp, dp)
        gamma = -gamma if stp > stx else gamma
        r = ((gamma - dp) + theta) / (((gamma - dp) + gamma) + dx)
        stpc = stp + r * (stx - stp)
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        stpf = stpc if np.abs(stpc - stp) > np.abs(stpq - stp) else stpq
        brackt = True
    elif np.abs(dp) < np.abs(dx):  # lower value, same sign, derivative shrinking
        theta, gamma = cubic(stx, fx, dx, stp, fp, dp, clip=True)
        gamma = -gamma if stp > stx else gamma
        r = ((gamma - dp) + theta) / ((gamma + (dx - dp)) + gamma)
        if r < 0.0 and gamma != 0.0:
            stpc = stp + r * (stx - stp)
        else:
            stpc = stpmax if stp > stx else stpmin
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        if brackt:
            stpf = stpc if np.abs(stpc - stp) < np.abs(stpq - stp) else stpq
            bound = stp + 0.66 * (sty - stp)
            stpf = np.fmin(bound, stpf) if stp > stx else np.fmax(bound, stpf)
        else:
            stpf = stpc if np.abs(stpc - stp) > np.abs(stpq - stp) else stpq
            stpf = np.fmax(stpmin, np.fmin(stpmax, stpf))
    elif brackt:  # lower value, same sign, derivative not shrinking
        theta, gamma = cubic(sty, fy, dy, stp, fp, dp)
        gamma = -gamma if stp > sty else gamma
        r = ((gamma - dp) + theta) / (((gamma - dp) + gamma) + dy)
        stpf = stp + r * (sty - stp)
    else:
        stpf = stpmax if stp > stx else stpmin

    if fp > fx:
        sty, fy, dy = stp, fp, dp
    else:
        if sgnd < 0.0:
            sty, fy, dy = stx, fx, dx
        stx, fx, dx = stp, fp, dp
    return stx, fx, dx, sty, fy, dy, stpf, brackt


class _LineSearch:
    """MINPACK-2 dcsrch: find a step with sufficient decrease and curvature (strong Wolfe)."""

    def __init__(self, f0, g0, stp, stpmax, ftol=1e-3, gtol=0.9, xtol=0.1, stpmin=0.0):
        f0, g0, stp = np.float64(f0), np.float64(g0), np.float64(stp)
        self.ftol, self.gtol, self.xtol, self.stpmin, self.stpmax = ftol, gtol, xtol, stpmin, stpmax
        self.brackt, self.stage = False, 1
        self.finit, self.ginit, self.gtest = f0, g0, ftol * g0
        self.width = stpmax - stpmin
        self.width1 = self.width / 0.5
        self.stx, self.fx, self.gx = np.float64(0.0), f0, g0
        self.sty, self.fy, self.gy = np.float64(0.0), f0, g0
        self.stmin, self.stmax = 0.0, stp + 4.0 * stp
        self.stp = stp

    def done(self, f, g) -> bool:
        """Feed f and f' at ``self.stp``; True when the search ends, else ``self.stp`` is the next trial."""
        f, g, stp = np.float64(f), np.float64(g), self.stp
        ftest = self.finit + stp * self.gtest
        if self.stage == 1 and f <= ftest and g >= 0.0:
            self.stage = 2
        brackt = self.brackt
        if (
            (brackt and (stp <= self.stmin or stp >= self.stmax))
            or (brackt and self.stmax - self.stmin <= self.xtol * self.stmax)
            or (stp == self.stpmax and f <= ftest and g <= self.gtest)
            or (stp == self.stpmin and (f > ftest or g >= self.gtest))
            or (f <= ftest and np.abs(g) <= self.gtol * (-self.ginit))
        ):
            return True  # converged, or a warning: scipy accepts the step either way
        with np.errstate(all="ignore"):
            if self.stage == 1 and f <= self.fx and f > ftest:  # modified function in stage 1
                gt = self.gtest
                out = _dcstep(self.stx, self.fx - self.stx * gt, self.gx - gt, self.sty, self.fy - self.sty * gt,
                              self.gy - gt, stp, f - stp * gt, g - gt, brackt, self.stmin, self.stmax)  # fmt: skip
                self.stx, fxm, gxm, self.sty, fym, gym, stp, brackt = out
                self.fx, self.fy = fxm + self.stx * gt, fym + self.sty * gt
                self.gx, self.gy = gxm + gt, gym + gt
            else:
                out = _dcstep(self.stx, self.fx, self.gx, self.sty, self.fy, self.gy, stp, f, g,
                              brackt, self.stmin, self.stmax)  # fmt: skip
                self.stx, self.fx, self.gx, self.sty, self.fy, self.gy, stp, brackt = out
        if brackt:
            if np.abs(self.sty - self.stx) >= 0.66 * self.width1:
                stp = self.stx + 0.5 * (self.sty - self.stx)
            self.width1, self.width = self.width, np.abs(self.sty - self.stx)
            self.stmin, self.stmax = np.fmin(self.stx, self.sty), np.fmax(self.stx, self.sty)
        else:
            self.stmin, self.stmax = stp + 1.1 * (stp - self.stx), stp + 4.0 * (stp - self.stx)
        stp = np.fmin(np.fmax(stp, self.stpmin), self.stpmax)
        if brackt and (stp <= self.stmin or stp >= self.stmax or self.stmax - self.stmin <= self.xtol * self.stmax):
            stp = self.stx  # no further progress possible: fall back to the best step
        self.brackt, self.stp = brackt, stp
        return False


def lbfgs(fg, x, max_iter=MAX_ITER, gtol=TOL, factr=64.0, m=10, maxls=50, maxfun=15000, on_iteration=None):
    """Minimise ``fg(x) -> (float f, tensor grad)`` like scipy's unconstrained L-BFGS-B.

    Without bounds L-BFGS-B's generalized Cauchy point is ``x - g`` (first step and after
    a memory reset) and its subspace step is the L-BFGS direction ``-H g``, computed here
    with the two-loop recursion (H0 = I/theta, theta = y'y/s'y).  Returns (x, n_iter, status).
    ``on_iteration()`` is called after each iteration (a progress bar; it never changes the path).
    """
    f, g = fg(x)
    nfev, n_iter, theta = 1, 0, 1.0
    mem: list[tuple[torch.Tensor, torch.Tensor, float]] = []  # (s, y, s'y), oldest first
    if g.abs().max().item() <= gtol:
        return x, 0, "converged"
    while True:
        d = -g if not mem else -_two_loop(g, mem, theta)
        dnorm = torch.linalg.vector_norm(d).item()
        stp = min(1.0 / dnorm, 1e10) if n_iter == 0 else 1.0
        x0, f0, g0 = x, f, g
        gd0 = torch.dot(g, d).item()
        ls, ok = None, gd0 < 0.0
        if ok:
            ls = _LineSearch(f0, gd0, stp, stpmax=1e10)
            for _ in range(maxls):
                x = torch.add(x0, d, alpha=float(ls.stp))
                f, g = fg(x)
                nfev += 1
                gd = torch.dot(g, d).item()
                if ls.done(f, gd):
                    break
            else:
                ok = False
        if not ok:  # line search failed: restore, then reset the memory or give up
            x, f, g = x0, f0, g0
            if not mem:
                return x, n_iter, "abnormal line search"
            mem, theta = [], 1.0
            continue
        n_iter += 1
        if on_iteration is not None:
            on_iteration()
        if n_iter >= max_iter:
            return x, n_iter, "max_iter"
        if nfev > maxfun:
            return x, n_iter, "maxfun"
        if g.abs().max().item() <= gtol:
            return x, n_iter, "converged"
        if f0 - f <= factr * EPS64 * max(abs(f0), abs(f), 1.0):
            return x, n_iter, "converged (relative reduction)"
        stp = float(ls.stp)
        dr, ddum = (gd - gd0) * stp, -gd0 * stp  # s'y and -s'g0, as L-BFGS-B computes them
        if dr > EPS64 * ddum:  # else skip the update (curvature condition fails)
            y = g - g0
            mem.append((d * stp, y, dr))
            if len(mem) > m:
                mem.pop(0)
            theta = torch.dot(y, y).item() / dr


def _two_loop(g: torch.Tensor, mem, theta: float) -> torch.Tensor:
    """H @ g for the L-BFGS inverse-Hessian approximation (Nocedal & Wright, Alg. 7.4)."""
    q, alphas = g.clone(), []
    for s, y, sy in reversed(mem):
        a = torch.dot(s, q) / sy
        q -= a * y
        alphas.append(a)
    q /= theta
    for (s, y, sy), a in zip(mem, reversed(alphas)):
        q += (a - torch.dot(y, q) / sy) * s
    return q
