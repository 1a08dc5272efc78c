# nnsight docs 6: manual stepping with tracer.next() (gone from nnsight 0.8.1).
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=3) as tracer:
    # First step (default)
    hs0 = model.transformer.h[-1].output[0].save()

    # Advance to second step
    tracer.next()
    hs1 = model.transformer.h[-1].output[0].save()

    # Advance to third step
    tracer.next()
    hs2 = model.transformer.h[-1].output[0].save()

print(f"Step 0 shape: {hs0.shape}")
print(f"Step 1 shape: {hs1.shape}")
print(f"Step 2 shape: {hs2.shape}")
