"""The SIP stand-in lives in testbed/sip_standin.py; this name stays for the tests.

python -m tests.support.sip_standin …   (the same as python -m testbed.sip_standin)
"""

from __future__ import annotations

import sys

from testbed.sip_standin import MWI_EVENTS, Received, Responder, SipStandin, main

__all__ = ["MWI_EVENTS", "Received", "Responder", "SipStandin", "main"]

if __name__ == "__main__":
    sys.exit(main())
