import nnsight
with model.trace("The Eiffel Tower is in the city of"):
    hs = model.transformer.h[3].output[0]
    vals = hs[0, -1, :3].tolist()
    print([round(v, 3) for v in vals])
    top = hs[0, -1].argmax().item()
    print(top, type(top).__name__)
    vals = nnsight.save(vals)
    top = nnsight.save(top)
    first = nnsight.save(hs[0, 0, 0].item())
print([round(v, 3) for v in vals], top, round(first, 3))
