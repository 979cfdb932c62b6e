"""The incident-replay lab: the postmortem's outage on loopback, with real parts.

`run_lab` plays normal traffic → presence server lock-up (SIGSTOP) → restart
(SIGCONT) twice, without and with the breaker, and reports what reached the
presence server, how fast the breaker reacted and what it cost. docs/lab.md.
"""

from lab._lab import LabResult, run_lab
from lab._params import MODES, LabParams, Mode
from lab._record import Headline

__all__ = ["MODES", "Headline", "LabParams", "LabResult", "Mode", "run_lab"]
