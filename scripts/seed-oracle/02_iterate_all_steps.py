# nnsight docs 2: iterating over every generation step with tracer.iter[:].
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=5) as tracer:
    tokens = list().save()
    for step in tracer.iter[:]:
        token = model.lm_head.output[0, -1].argmax(dim=-1)
        tokens.append(token)

for i, t in enumerate(tokens):
    print(f"Step {i}: {model.tokenizer.decode(t)}")
