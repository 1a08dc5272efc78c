# Variant of Examples/seed/06 for nnsight 0.8.1, which has no tracer.next(): one loop per step.
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=3) as tracer:
    for step in tracer.iter[0]:
        hs0 = model.transformer.h[-1].output[0].save()
    for step in tracer.iter[1]:
        hs1 = model.transformer.h[-1].output[0].save()
    for step in tracer.iter[2]:
        hs2 = model.transformer.h[-1].output[0].save()

print(f"Step 0 shape: {hs0.shape}")
print(f"Step 1 shape: {hs1.shape}")
print(f"Step 2 shape: {hs2.shape}")
