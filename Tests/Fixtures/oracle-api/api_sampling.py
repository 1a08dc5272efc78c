with model.generate("The Eiffel Tower is in the city of", max_new_tokens=16) as tracer:
    greedy = model.generator.output.save()
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=16, repetition_penalty=1.3) as tracer:
    penalized = model.generator.output.save()
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=8, eos_token_id=1162, pad_token_id=0) as tracer:
    stopped = model.generator.output.save()
with model.generate(["The Eiffel Tower is in the city of", "Hello"], max_new_tokens=5, do_sample=True, top_k=1, repetition_penalty=2.0) as tracer:
    batch = model.generator.output.save()
print(greedy[0, 12:].tolist())
print(penalized[0, 12:].tolist())
print(stopped[0, 12:].tolist())
print(batch[:, -5:].tolist())
