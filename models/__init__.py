"""The model's tooling: what only the tests and the benchmark use, kept out of the images.

lab/model.py is what the services use at run time (the burst model the sender predicts a
makespan with, Caps, each mode's record MODES_ with its formula texts). Built on it, here:

    models/steady.py    the steady state at an offered rate: capacity(), the queueing
                        formulas, steady_state()
    models/simulate.py  the receiver's event loop as a discrete-event simulation, turn by
                        turn, for any arrival times: simulate()

.dockerignore copies only lab/ and the service packages into the images, so none of this
ships; nothing in lab/ or the services imports it.
"""
