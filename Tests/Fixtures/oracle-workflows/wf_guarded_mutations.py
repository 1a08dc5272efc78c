import torch
branches = []
counts = {"small": 0, "big": 0}
seen = []
with model.trace("The Eiffel Tower is in the city of") as tracer:
    x = model.transformer.h[0].output[0]
    if torch.all(x < 1e5):
        branches.append("small")
        counts["small"] += 1
        seen.extend([1, 2])
    else:
        branches.append("big")
        counts["big"] += 1
        seen.insert(0, 9)
    if x.max() > 1e6:
        branches.pop()
        counts["never"] = 1
print(branches, counts, seen)
