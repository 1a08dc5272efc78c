# Variant of Examples/seed/07 that nnsight 0.8.1 runs to the end: iter[:5] for all().

with model.generate("The Eiffel Tower is in the city of", max_new_tokens=5) as tracer:
    hidden_states = list().save()
    for step in tracer.iter[:5]:
        # This runs on every step
        model.transformer.h[0].output[0][:] = 0
        hidden_states.append(model.transformer.h[-1].output[0])
    output = model.generator.output.save()

print(f"Collected {len(hidden_states)} hidden states")
print(f"Output: {model.tokenizer.decode(output[0])}")
