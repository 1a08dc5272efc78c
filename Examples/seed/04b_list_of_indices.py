# nnsight docs 4: a list of steps, tracer.iter[[0, 2, 4]].
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=5) as tracer:
    tokens = list().save()
    for step in tracer.iter[[0, 2, 4]]:
        tokens.append(model.lm_head.output[0, -1].argmax(dim=-1))
    output = model.generator.output.save()

print(f"Collected {len(tokens)} tokens from steps 0, 2, 4: {[model.tokenizer.decode(t) for t in tokens]}")
print(model.tokenizer.decode(output[0]))
