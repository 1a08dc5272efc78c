# nnsight docs 4: a single step, tracer.iter[0].
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=5) as tracer:
    tokens = list().save()
    for step in tracer.iter[0]:
        tokens.append(model.lm_head.output[0, -1].argmax(dim=-1))
    output = model.generator.output.save()

print(f"Collected {len(tokens)} token from step 0: {model.tokenizer.decode(tokens[0])}")
print(model.tokenizer.decode(output[0]))
