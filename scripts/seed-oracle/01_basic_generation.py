# nnsight docs, "Multiple Token Generation" 1: basic generation.
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=5) as tracer:
    output = model.generator.output.save()

print(model.tokenizer.decode(output[0]))
