"""Code the lab's three services share, and the only code besides them copied into the images.

Only what would otherwise be written three times lives here: the model of what each
receiver mode costs, settings parsing, logging, and the metrics helpers.
"""

# The body every successful call answers with, exactly as in the seed post.
SEED_BODY = b'{"res":{"message":"success"}}'
