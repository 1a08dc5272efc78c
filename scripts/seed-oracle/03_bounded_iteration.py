# nnsight docs 3: bounded iteration, steps 1 and 2.
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=5) as tracer:
    tokens = list().save()
    for step in tracer.iter[1:3]:
        tokens.append(model.lm_head.output[0, -1].argmax(dim=-1))
    output = model.generator.output.save()

print(f"Full output: {model.tokenizer.decode(output[0])}")
print(f"Collected {len(tokens)} tokens from steps 1-2")
