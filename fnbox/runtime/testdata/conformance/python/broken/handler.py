# Line 2 has a syntax error on purpose.
def bad(event, context)
    return 1
