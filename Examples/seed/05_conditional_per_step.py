# nnsight docs 5: conditional intervention on the first step only (nnsight 0.8.1 hangs here).
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=5) as tracer:
    for step in tracer.iter[:]:
        if step == 0:
            # Only intervene on the first generation step
            model.transformer.h[0].output[0][:] = 0
    output = model.generator.output.save()

print(model.tokenizer.decode(output[0]))
